import Foundation
import XCTest
@testable import Cohort

/// Two test hosts on this machine (network namespaces joined by a bridge, `Tests/scripts/testhosts`),
/// one worker each, through `launch/hosts` over TCP. Needs root, for `ip netns`.
final class MultiHostTests: XCTestCase {
    let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts")
    let launch = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("launch")

    func shell(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, error)
    }

    override func setUpWithError() throws {
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root; CI runs as root") }
        let up = try shell([scripts.appendingPathComponent("testhosts").path, "up"])
        XCTAssertEqual(up.status, 0, up.error)
        addTeardownBlock { [scripts] in
            let down = Process()
            down.executableURL = scripts.appendingPathComponent("testhosts")
            down.arguments = ["down"]
            try? down.run()
            down.waitUntilExit()
        }
    }

    /// `launch/hosts` run from inside the first host, both hosts in the hostfile.
    func launchOnHosts(config: String, directory: URL, extra: [String] = [], mpirunArgs: String = "",
                       hosts: String = "cohort-h1 slots=1\ncohort-h2 slots=1\n") throws -> Process {
        let hostfile = directory.appendingPathComponent("hostfile")
        try hosts.write(to: hostfile, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        // With a host name of its own, as netns-rsh gives each host: OpenMPI keys its session
        // directories by host name, and hosts that share one (and /tmp) share them.
        process.arguments = ["netns", "exec", "cohort-h1", "unshare", "--uts", "sh", "-c", "hostname cohort-h1 && exec \"$0\" \"$@\"",
                             launch.appendingPathComponent("hosts").path, hostfile.path, config] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["COHORT_BIN"] = try cohortBinary().path
        environment["COHORT_MPIRUN_ARGS"] = "--mca plm_rsh_agent \(scripts.appendingPathComponent("netns-rsh").path) "
            + "--mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 " + mpirunArgs
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        return process
    }

    /// Starts `launch/hosts` and waits until `path` appears; a launch that has not got there in
    /// `timeout` (a machine loaded by other work) is ended and tried once more.
    func launchUntil(_ path: String, config: String, directory: URL, timeout: Double = 30) throws -> (Process, Pipe) {
        for attempt in 1...2 {
            let job = try launchOnHosts(config: config, directory: directory)
            let err = Pipe()
            job.standardError = err
            try job.run()
            if MPIJob.waitFor(path, timeout: timeout) { return (job, err) }
            job.terminate()
            let restart = try shell([scripts.appendingPathComponent("testhosts").path, "up"])
            XCTAssertEqual(restart.status, 0, restart.error)
            job.waitUntilExit()
            print("launch attempt \(attempt) did not start within \(timeout) s")
        }
        throw XCTSkip("the OpenMPI daemons did not start across the test hosts twice in a row")
    }

    func testTrainingAcrossTwoHostsEqualsTrainingOnOne() throws {
        let directory = try temporaryDirectory(self)
        let data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
        let local = directory.appendingPathComponent("local"), remote = directory.appendingPathComponent("hosts")
        try distributedConfig(data: data, run: local, maxSteps: 20).write(toFile: local.path + ".yaml", atomically: true, encoding: .utf8)
        try distributedConfig(data: data, run: remote, maxSteps: 20).write(toFile: remote.path + ".yaml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try MPIJob(workers: 1, arguments: ["train", local.path + ".yaml"], configPath: local.path + ".yaml").wait().status, 0)
        let (job, err) = try launchUntil(remote.appendingPathComponent("checkpoints/latest").path, config: remote.path + ".yaml", directory: directory)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 0, errText)
        let a = try SafeTensors.read(path: local.appendingPathComponent("checkpoints/20/model.safetensors").path).tensors
        let b = try SafeTensors.read(path: remote.appendingPathComponent("checkpoints/20/model.safetensors").path).tensors
        assertSameWeights(a, b, tolerance: 1e-5, "two hosts against one worker")
    }

    /// A user's `--mca btl` is accepted (mpirun refuses a parameter listed twice), and OpenMPI
    /// then picks per pair of workers: shared memory within cohort-h1, TCP to cohort-h2.
    func testAUsersTransportsAreAcceptedAndSharedMemoryIsUsedWithinAHost() throws {
        let directory = try temporaryDirectory(self)
        let data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
        let run = directory.appendingPathComponent("run")
        try distributedConfig(data: data, run: run, maxSteps: 3).write(toFile: run.path + ".yaml", atomically: true, encoding: .utf8)
        let job = try launchOnHosts(config: run.path + ".yaml", directory: directory,
                                    mpirunArgs: "--mca btl self,vader,tcp --mca btl_base_verbose 1",
                                    hosts: "cohort-h1 slots=2\ncohort-h2 slots=1\n")
        let err = Pipe()
        job.standardError = err
        try job.run()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 0, errText)
        XCTAssertEqual(errText.components(separatedBy: "Using vader btl for send to").count - 1, 2, errText)
        XCTAssertEqual(errText.components(separatedBy: "Using tcp btl for send to").count - 1, 4, errText)
    }

    /// Cutting one host's link ends the job with an error in well under 90 s; `--resume auto` on one host finishes the run.
    func testACutLinkEndsTheJobAndTheRunResumesOnOneHost() throws {
        let directory = try temporaryDirectory(self)
        let data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
        let run = directory.appendingPathComponent("run")
        let config = run.path + ".yaml"
        try distributedConfig(data: data, run: run, maxSteps: 100_000, everySteps: 20, timeout: 10)
            .write(toFile: config, atomically: true, encoding: .utf8)
        let (job, err) = try launchUntil(run.appendingPathComponent("checkpoints/latest").path, config: config, directory: directory)
        let cut = try shell([scripts.appendingPathComponent("testhosts").path, "cut", "cohort-h2"])
        XCTAssertEqual(cut.status, 0, cut.error)
        let cutAt = Date()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        let seconds = Date().timeIntervalSince(cutAt)
        XCTAssertNotEqual(job.terminationStatus, 0)
        XCTAssertTrue(errText.contains("error:"), errText)
        // The script kills an mpirun that waits on the cut link: bash's notice of it quoted 25 lines of the script.
        XCTAssertFalse(errText.contains("Killed"), errText)
        XCTAssertLessThan(seconds, 90, "the job took \(seconds) s to end after the cut")
        let step = try XCTUnwrap(Int(try String(contentsOf: run.appendingPathComponent("checkpoints/latest"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        try distributedConfig(data: data, run: run, maxSteps: step + 10, everySteps: 20)
            .write(toFile: config, atomically: true, encoding: .utf8)
        let resumed = try MPIJob(workers: 1, arguments: ["train", config, "--resume", "auto"], configPath: config).wait()
        XCTAssertEqual(resumed.status, 0, resumed.error)
        XCTAssertTrue(resumed.output.contains("resumed from"), resumed.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoints/\(step + 10)/model.safetensors").path))
    }

    /// A host whose daemon starts but cannot connect back to mpirun (its link is down; a firewall
    /// does the same): mpirun's daemon, detached from its remote shell, exited unseen and the launch
    /// waited with no word (608 s seen, orte_startup_timeout notwithstanding). Now one line names
    /// the host (the daemon's page, on standard output, was 9 lines beside it).
    func testAHostThatCannotConnectBackEndsTheLaunchAtOnce() throws {
        let directory = try temporaryDirectory(self)
        let data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
        let run = directory.appendingPathComponent("run")
        let config = run.path + ".yaml"
        try distributedConfig(data: data, run: run, maxSteps: 20, everySteps: 10).write(toFile: config, atomically: true, encoding: .utf8)
        let cut = try shell([scripts.appendingPathComponent("testhosts").path, "cut", "cohort-h2"])
        XCTAssertEqual(cut.status, 0, cut.error)
        let job = try launchOnHosts(config: config, directory: directory)
        let err = Pipe(), out = Pipe()
        job.standardError = err
        job.standardOutput = out
        let start = Date()
        try job.run()
        // Past two minutes, every process of the test hosts is ended (mpirun too: it holds the pipe).
        let watchdog = DispatchWorkItem { [self] in _ = try? shell([scripts.appendingPathComponent("testhosts").path, "down"]) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let outText = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        watchdog.cancel()
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, 60, "the launch took \(seconds) s to fail: \(errText)")
        XCTAssertEqual(job.terminationStatus, 1, errText)
        XCTAssertTrue(errText.hasSuffix("no worker ran\n"), errText)
        XCTAssertTrue(errText.contains("error: mpirun could not start its daemon on every host: cohort-h2 could not open a TCP connection to cohort-h1"), errText)
        XCTAssertEqual(errText.split(separator: "\n").count, 1, errText)
        XCTAssertEqual(outText, "", "the daemon's page is held back from standard output")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoints").path))
    }
}
