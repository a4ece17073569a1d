import Foundation
import XCTest
@testable import Cohort

/// `launch/slurm` on a real Slurm cluster that each test starts and stops (`Tests/scripts/slurmcluster`):
/// one node with this machine's CPUs (or two, one per test host), configured as many sites are
/// (`MpiDefault=none`), with the real `sbatch`, `srun`, `scancel` and `scontrol`. Needs root and
/// Debian's Slurm packages; skipped without them.
final class SlurmClusterTests: XCTestCase {
    static let packages = "slurmctld slurmd slurm-client munge"
    let scripts = projectDirectory.appendingPathComponent("Tests/scripts")
    let script = projectDirectory.appendingPathComponent("launch/slurm")
    var directory: URL!
    var cluster: URL { directory.appendingPathComponent("cluster") }
    var data: IDXPair!
    var slurmEnvironment: [String: String] = [:]

    /// Uninterrupted runs under `mpirun -np 2`, by number of steps: `model.safetensors`'s bytes.
    nonisolated(unsafe) static var references: [Int: Data] = [:]

    override func setUpWithError() throws {
        guard getuid() == 0 else { throw XCTSkip("the Slurm tests run slurmctld and slurmd as root; CI runs as root") }
        for program in ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "scancel"] where executable(program) == nil {
            throw XCTSkip("\(program) not found: the Slurm tests need apt-get install -y \(SlurmClusterTests.packages)")
        }
        directory = try temporaryDirectory(self)
        data = try writeSyntheticData(in: directory, name: "train", count: 600, rows: 6, columns: 6, classes: 5, seed: 4)
        slurmEnvironment = [
            "PATH": (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/usr/bin:/sbin:/bin",
            "SLURM_CONF": cluster.appendingPathComponent("slurm.conf").path,
            "COHORT_BIN": try cohortBinary().path,
            "COHORT_LAUNCHER": "", "COHORT_SRUN_ARGS": "", "COHORT_SBATCH_ARGS": "", "COHORT_SLURM_RESUBMITS": "",
            "COHORT_SLURM_SCRIPT": "", "SLURM_MPI_TYPE": "",
        ]
    }

    func executable(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts the cluster; it is stopped (every daemon, job and worker ended) when the test ends,
    /// whether it passed or not.
    func startCluster(twoHosts: Bool = false) throws {
        let stop = [scripts.appendingPathComponent("slurmcluster").path, "stop", cluster.path]
        addTeardownBlock { [directory, slurmEnvironment] in
            _ = try? runProcess(URL(fileURLWithPath: "/usr/bin/env"), stop, in: directory!, environment: slurmEnvironment)
        }
        let start = try runProcess(URL(fileURLWithPath: "/usr/bin/env"),
                                   [scripts.appendingPathComponent("slurmcluster").path, "start", cluster.path] + (twoHosts ? ["--hosts"] : []),
                                   in: directory, environment: slurmEnvironment)
        guard start.status == 0 else {
            let logs = (try? FileManager.default.contentsOfDirectory(atPath: cluster.appendingPathComponent("log").path)) ?? []
            let tails = logs.map { name in
                let text = (try? String(contentsOfFile: cluster.appendingPathComponent("log/\(name)").path, encoding: .utf8)) ?? ""
                return "== \(name)\n" + text.split(separator: "\n").suffix(8).joined(separator: "\n")
            }
            throw XCTSkip("the Slurm cluster did not start: \(start.err)\n" + tails.joined(separator: "\n"))
        }
    }

    /// A Slurm command, run in the submission directory.
    @discardableResult
    func slurm(_ arguments: [String], _ extra: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        try runProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments, in: directory,
                       environment: slurmEnvironment.merging(extra) { $1 }, file: file, line: line)
    }

    /// `sbatch OPTIONS launch/slurm CONFIG`: the job's id.
    func submit(_ options: [String], config: String, _ extra: [String: String] = [:]) throws -> Int {
        let result = try slurm(["sbatch"] + options + [script.path, config], extra)
        XCTAssertEqual(result.status, 0, result.err)
        print("$ sbatch \((options + ["launch/slurm", config]).joined(separator: " "))\n\(result.out)", terminator: "")
        return try XCTUnwrap(Int(result.out.replacingOccurrences(of: "Submitted batch job ", with: "")
            .trimmingCharacters(in: .whitespacesAndNewlines)), result.out)
    }

    /// Every job the cluster knows: id, state and reason.
    func jobs() throws -> [(id: Int, state: String, reason: String)] {
        let text = try slurm(["scontrol", "-o", "show", "job"]).out
        return text.split(separator: "\n").compactMap { line in
            var fields: [String: String] = [:]
            for field in line.split(separator: " ") {
                let parts = field.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            guard let id = fields["JobId"].flatMap({ Int($0) }) else { return nil }
            return (id, fields["JobState"] ?? "", fields["Reason"] ?? "")
        }.sorted { $0.id < $1.id }
    }

    /// Waits until every job has ended or is held: the run and its resubmissions are over.
    func waitForTheQueue(timeout: Double = 240) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            // Transient states (RUNNING, COMPLETING, SIGNALING, ...) are not in this list.
            let ended = ["COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"]
            if try jobs().allSatisfy({ ended.contains($0.state) || ($0.state == "PENDING" && $0.reason == "JobHeldUser") }) {
                return
            }
            usleep(300_000)
        }
        XCTFail("the jobs did not end within \(timeout) s: \(try jobs())")
    }

    func output(of job: Int) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("cohort-\(job).out"), encoding: .utf8)) ?? ""
    }

    /// Waits until `path` exists, or fails.
    func waitFor(_ path: URL, timeout: Double = 120) throws {
        if !MPIJob.waitFor(path.path, timeout: timeout) {
            throw NSError(domain: "SlurmClusterTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path.path) did not appear: \(try jobs())"])
        }
    }

    /// Writes the config of a run of `steps` steps (constant learning rate) into `run.yaml` beside `run`.
    func writeConfig(_ run: String, steps: Int, every: Int = 20) throws -> String {
        let config = directory.appendingPathComponent("\(run).yaml")
        try distributedConfig(data: data, run: directory.appendingPathComponent(run), maxSteps: steps, everySteps: every, schedule: "constant")
            .write(to: config, atomically: true, encoding: .utf8)
        return config.path
    }

    func weights(_ run: String, step: Int) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent("\(run)/checkpoints/\(step)/model.safetensors"))
    }

    /// The weights of an uninterrupted `mpirun -np 2` run of `steps` steps.
    func reference(steps: Int) throws -> Data {
        if let weights = SlurmClusterTests.references[steps] { return weights }
        let config = try writeConfig("reference", steps: steps)
        let job = try MPIJob(workers: 2, arguments: ["train", config], configPath: config).wait()
        XCTAssertEqual(job.status, 0, job.error)
        let weights = try self.weights("reference", step: steps)
        SlurmClusterTests.references[steps] = weights
        return weights
    }

    /// Rank 0 alone prints, once, for a world of 2: without the right MPI plugin every worker is
    /// rank 0 of a world of 1.
    func assertOneWorldOfTwo(_ output: String, file: StaticString = #filePath, line: UInt = #line) {
        let starts = output.split(separator: "\n").filter { $0.hasPrefix("training ") }
        XCTAssertEqual(starts.count, 1, output, file: file, line: line)
        XCTAssertTrue(starts.allSatisfy { $0.hasSuffix("world=2") }, output, file: file, line: line)
        XCTAssertFalse(output.contains("world=1"), output, file: file, line: line)
    }

    /// N of rank 0's "stopped at step N by SIGTERM".
    func stoppedStep(_ output: String) -> Int? {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("stopped at step ") && $0.contains(" by SIGTERM") }) else { return nil }
        return Int(line.dropFirst("stopped at step ".count).prefix { $0.isNumber })
    }

    func checkARunTrainsToTheEnd(launcher: String) throws {
        try startCluster()
        let config = try writeConfig("run", steps: 300)
        let job = try submit([], config: config, ["COHORT_LAUNCHER": launcher])
        try waitForTheQueue()
        XCTAssertEqual(try jobs().map(\.state), ["COMPLETED"], output(of: job))
        assertOneWorldOfTwo(output(of: job))
        XCTAssertTrue(output(of: job).contains("launch/slurm: the run finished"), output(of: job))
        XCTAssertEqual(try weights("run", step: 300), try reference(steps: 300), "sbatch against mpirun -np 2")
    }

    func testSbatchTrainsWithSrunLikeMpirun() throws {
        try checkARunTrainsToTheEnd(launcher: "srun")
    }

    func testSbatchTrainsWithMpirunInsideTheJob() throws {
        try checkARunTrainsToTheEnd(launcher: "mpirun")
    }

    /// `scancel --signal=TERM` signals the job's steps: the workers stop at the same step with a
    /// checkpoint, the job resubmits itself, and the next one finishes the run.
    func testScancelTermPreemptsAndTheResubmittedJobFinishesTheRun() throws {
        try startCluster()
        let config = try writeConfig("run", steps: 600)
        let first = try submit([], config: config)
        try waitFor(directory.appendingPathComponent("run/checkpoints/latest"))
        let signalled = Date()
        let cancel = try slurm(["scancel", "--signal=TERM", "\(first)"])
        XCTAssertEqual(cancel.status, 0, cancel.err)
        print("$ scancel --signal=TERM \(first)\n\(cancel.out)\(cancel.err)", terminator: "")
        try waitForTheQueue()
        let all = try jobs()
        XCTAssertEqual(all.map(\.state), ["COMPLETED", "COMPLETED"], "\(all)\n\(output(of: first))")
        let second = try XCTUnwrap(all.last?.id)
        let stopped = output(of: first)
        print("== cohort-\(first).out\n\(stopped)== cohort-\(second).out\n\(output(of: second))", terminator: "")
        assertOneWorldOfTwo(stopped)
        XCTAssertTrue(stopped.contains("tasks 0-1: Exited with exit code 75"), stopped)
        XCTAssertTrue(stopped.contains("resubmitted to resume: Submitted batch job \(second)"), stopped)
        let step = try XCTUnwrap(stoppedStep(stopped), stopped)
        XCTAssertLessThan(step, 600)
        let written = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("run/checkpoints/\(step)").path)[.modificationDate] as? Date
        print(String(format: "signal to checkpoint %d: %.2f s", step, written.map { $0.timeIntervalSince(signalled) } ?? -1))
        XCTAssertTrue(output(of: second).contains("resumed from \(directory.appendingPathComponent("run/checkpoints/\(step)").path) at step \(step)"),
                      output(of: second))
        assertOneWorldOfTwo(output(of: second))
        XCTAssertEqual(try weights("run", step: 600), try reference(steps: 600), "pre-empted and resumed against uninterrupted")
    }

    /// Slurm's warning before the time limit (`--signal=B:USR1@50` of `--time=1`: Slurm checks time
    /// limits every 30 s, so it comes 10 to 40 s into the job) reaches the batch script, which stops
    /// the workers with a checkpoint and resubmits. The run's length is set once the step of that
    /// checkpoint is known: the resubmitted job is held (COHORT_SBATCH_ARGS), the config given more
    /// steps, the job released.
    func testTheTimeLimitsWarningCheckpointsAndTheRunResumes() throws {
        try startCluster()
        let config = try writeConfig("run", steps: 1_000_000, every: 0)
        let first = try submit(["--time=1", "--signal=B:USR1@50"], config: config, ["COHORT_SBATCH_ARGS": "--hold --time=10"])
        let submitted = Date()
        try waitForTheQueue(timeout: 120)
        let held = try jobs()
        XCTAssertEqual(held.map(\.state), ["COMPLETED", "PENDING"], "\(held)\n\(output(of: first))")
        let stopped = output(of: first)
        print("== cohort-\(first).out (\(Int(Date().timeIntervalSince(submitted))) s after sbatch)\n\(stopped)", terminator: "")
        XCTAssertTrue(stopped.contains("launch/slurm: SIGUSR1: asking the workers to checkpoint and stop"), stopped)
        let step = try XCTUnwrap(stoppedStep(stopped), stopped)
        let second = try XCTUnwrap(held.last?.id)
        XCTAssertTrue(stopped.contains("resubmitted to resume: Submitted batch job \(second)"), stopped)
        _ = try writeConfig("run", steps: step + 40, every: 0)
        XCTAssertEqual(try slurm(["scontrol", "release", "\(second)"]).status, 0)
        try waitForTheQueue()
        XCTAssertEqual(try jobs().map(\.state), ["COMPLETED", "COMPLETED"], output(of: second))
        XCTAssertTrue(output(of: second).contains("at step \(step)"), output(of: second))
        XCTAssertTrue(output(of: second).contains("launch/slurm: the run finished"), output(of: second))
        XCTAssertEqual(try weights("run", step: step + 40), try reference(steps: step + 40), "stopped at the warning and resumed against uninterrupted")
    }

    /// The time limit itself, its warning not taken (here a signal the script ignores): Slurm signals
    /// each worker SIGTERM twice at once (through srun and directly), which had ended them with no
    /// checkpoint and no resubmission. They stop with a checkpoint, which the held resubmission
    /// would resume, and their stop line says to run the script again.
    func testTheTimeLimitItselfCheckpointsAndResubmits() throws {
        try startCluster()
        let config = try writeConfig("run", steps: 1_000_000, every: 0)
        let first = try submit(["--time=1", "--signal=B:URG@2"], config: config, ["COHORT_SBATCH_ARGS": "--hold --time=10"])
        try waitForTheQueue(timeout: 150)
        let held = try jobs()
        let stopped = output(of: first)
        XCTAssertEqual(held.map(\.state), ["TIMEOUT", "PENDING"], "\(held)\n\(stopped)")
        XCTAssertNotNil(stoppedStep(stopped), stopped)
        XCTAssertTrue(stopped.contains("by SIGTERM; checkpoint "), stopped)
        XCTAssertTrue(stopped.contains("continue with: sbatch \(script.path) "), stopped)
        XCTAssertTrue(stopped.contains("resubmitted to resume: Submitted batch job \(try XCTUnwrap(held.last?.id))"), stopped)
        _ = try slurm(["scancel", "\(try XCTUnwrap(held.last?.id))"])
    }

    /// `scancel --signal=KILL` cancels the job (Slurm: SIGTERM, then SIGKILL after KillWait): no resubmission.
    func testScancelKillEndsTheRunForGood() throws {
        try startCluster()
        let config = try writeConfig("run", steps: 100_000)
        let job = try submit([], config: config)
        try waitFor(directory.appendingPathComponent("run/checkpoints/latest"))
        XCTAssertEqual(try slurm(["scancel", "--signal=KILL", "\(job)"]).status, 0)
        try waitForTheQueue(timeout: 60)
        usleep(1_000_000)
        XCTAssertEqual(try jobs().map(\.state), ["CANCELLED"], output(of: job))
        XCTAssertFalse(output(of: job).contains("resubmitted to resume"), output(of: job))
        XCTAssertTrue(output(of: job).contains("the job was cancelled: not resubmitted"), output(of: job))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("run/checkpoints/100000").path))
    }

    /// Two nodes, one `slurmd` in each test host (network namespaces): `srun` starts one worker on each.
    func testTwoNodesTrainLikeMpirun() throws {
        try startCluster(twoHosts: true)
        let config = try writeConfig("run", steps: 300)
        let job = try submit(["--nodes=2", "--ntasks-per-node=1"], config: config)
        try waitForTheQueue()
        XCTAssertEqual(try jobs().map(\.state), ["COMPLETED"], output(of: job))
        assertOneWorldOfTwo(output(of: job))
        for node in ["cohort-s1", "cohort-s2"] {
            let log = try String(contentsOf: cluster.appendingPathComponent("log/slurmd-\(node).log"), encoding: .utf8)
            XCTAssertTrue(log.contains("launch task StepId=\(job).0"), "no worker on \(node):\n\(log)")
        }
        XCTAssertEqual(try weights("run", step: 300), try reference(steps: 300), "two nodes against mpirun -np 2")
    }
}
