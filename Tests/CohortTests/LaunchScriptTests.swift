import Foundation
import XCTest

/// The launch scripts' own checks: every failure is one line that says what is wrong.
final class LaunchScriptTests: XCTestCase {
    func hosts(_ hostfile: String, in directory: URL) throws -> ProcessResult {
        try hostfile.write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        return try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                              environment: ["COHORT_BIN": try cohortBinary().path])
    }

    /// `text` as an executable script `name` in `directory`.
    @discardableResult
    func writeScript(_ text: String, named name: String, in directory: URL) throws -> URL {
        let script = directory.appendingPathComponent(name)
        try text.write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        return script
    }

    /// `launch/SCRIPT ARGUMENTS` in `directory`, started, with `environment` added to this process's,
    /// standard output to `output` (default: nowhere); returns it and the pipe of its standard error.
    func startLaunch(_ script: String, _ arguments: [String], in directory: URL, environment: [String: String],
                     output: FileHandle = .nullDevice) throws -> (process: Process, err: Pipe) {
        let process = Process()
        process.executableURL = projectDirectory.appendingPathComponent("launch/\(script)")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        process.standardOutput = output
        process.standardError = err
        try process.run()
        return (process, err)
    }

    /// `text` as the `mpirun` of `directory/bin`; returns a PATH on which it comes first.
    func fakeMpirun(_ text: String, in directory: URL) throws -> String {
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try writeScript(text, named: "mpirun", in: bin)
        return bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
    }

    /// OpenMPI's complaint about a hostfile was hidden by --quiet: it failed with status 1 and nothing said.
    func testAHostfileThatIsNotOneIsNamed() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        for (text, expected) in [("garbage line here ===\n", "error: hosts: line 1: expected a host name then options such as slots=N, got 'garbage line here ==='\n"),
                                 ("# only a comment\n\n", "error: hosts: no hosts in the hostfile\n"),
                                 ("localhost slots=two\n", "error: hosts: line 1: expected a host name then options such as slots=N, got 'localhost slots=two'\n"),
                                 ("# windows\r\nlocalhost slots=2\r\n", "error: hosts: line 1 ends in a carriage return (Windows line endings, which mpirun cannot read): convert the file with dos2unix, or sed -i 's/\\r$//' hosts\n")] {
            let result = try hosts(text, in: directory)
            XCTAssertEqual(result.status, 2, text)
            XCTAssertEqual(result.err, expected)
        }
        let good = try hosts("# this machine\nlocalhost slots=2 # both cores\n", in: directory)
        XCTAssertEqual(good.status, 0, good.err)
        XCTAssertTrue(good.out.contains("world=2"), good.out)
        XCTAssertFalse(good.err.contains("workers started"), good.err)
    }

    /// mpirun refuses slots given to a host on two lines, and a directory is no hostfile: both were
    /// an unexplained "mpirun failed" or bash's own errors.
    func testAHostListedTwiceWithSlotsOrADirectoryIsNamed() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let twice = try hosts("localhost\nlocalhost slots=1\n", in: directory)
        XCTAssertEqual(twice.status, 2)
        XCTAssertEqual(twice.err, "error: hosts: line 2: localhost is on an earlier line too (give the host one line with all its slots)\n")
        let folder = try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), [directory.path, "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path])
        XCTAssertEqual(folder.status, 2)
        XCTAssertEqual(folder.err, "error: \(directory.path): not a file (expected an OpenMPI hostfile)\n")
    }

    /// COHORT_MPIRUN_ARGS is read as a shell reads words: quotes keep `-x 'FOO=a b'` one option and
    /// a `*` is not a file name pattern (both were split or expanded); an unmatched quote is named.
    func testMpirunOptionsAreSplitAsAShellWould() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let path = try fakeMpirun("#!/bin/bash\nprintf '[%s]' \"$@\" > \"$FAKE_LOG\"\n", in: directory)
        let log = directory.appendingPathComponent("args")
        func local(_ options: String) throws -> ProcessResult {
            try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "1", "c.yaml"], in: directory,
                           environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path, "FAKE_LOG": log.path, "COHORT_MPIRUN_ARGS": options])
        }
        let quoted = try local(#"-x 'FOO=a b' --mca btl "self,tcp" *"#)
        XCTAssertEqual(quoted.status, 0, quoted.err)
        let recorded = try String(contentsOf: log, encoding: .utf8), binary = try cohortBinary().path
        XCTAssertTrue(recorded.contains("[-x][FOO=a b][--mca][btl][self,tcp][*][\(binary)][train][c.yaml]"), recorded)
        let unmatched = try local("-x 'FOO=a b")
        XCTAssertEqual(unmatched.status, 2)
        XCTAssertEqual(unmatched.err, "error: COHORT_MPIRUN_ARGS: unmatched quote in '-x 'FOO=a b'\n")
    }

    /// COHORT_BIN naming a directory passed the check for an executable, and mpirun's failure to
    /// start it was reported as a worker killed by a signal.
    func testABinaryThatIsADirectoryIsNamed() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "1", "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": directory.path])
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.err, "error: \(directory.path): no cohort binary (build it with 'swift build -c release' or set COHORT_BIN)\n")
    }

    /// A stop signal that comes once mpirun has ended, while the script waits out its poll or reports
    /// the end: the kill it forwards finds no process, which under `set -e` ended the script with
    /// status 1 and no word. An `mpirun` that succeeds at once stands in for a run that has just finished.
    func testAStopSignalAfterMpirunEndedLeavesTheStatusAlone() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let ended = directory.appendingPathComponent("mpirun-ended").path
        let path = try fakeMpirun("#!/bin/sh\ntouch \(ended)\nexit 0\n", in: directory)
        let (process, err) = try startLaunch("local", ["-n", "1", "c.yaml"], in: directory,
                                             environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path])
        XCTAssertTrue(MPIJob.waitFor(ended, timeout: 30))
        usleep(20_000)  // mpirun gone; the script in its 0.2 s poll, or reporting the end
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), "")
    }

    /// Each stop signal reaches mpirun (one that came before it had started the workers was lost,
    /// and the next ignored); the script exits 75 only when rank 0 says it stopped with a checkpoint,
    /// else (a worker ended on the signal as it started) it is an error. A fake `mpirun` counts the
    /// SIGUSR1s: in `checkpoint` mode it stops as rank 0 does at the first, else it ends at the second.
    /// The stop line names the SIGINT the script got, not the SIGUSR1 it passed on (Ctrl-C said SIGUSR1).
    func testEveryStopSignalReachesMpirunAndOnlyACheckpointIsAStop() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let path = try fakeMpirun("""
            #!/bin/bash
            count=0
            trap 'count=$((count + 1)); echo $count > "$FAKE_LOG"
                  if [ "$FAKE_MODE" = checkpoint ]; then echo "stopped at step 3 by SIGUSR1; checkpoint run/checkpoints/3; continue with: x" >&2; exit 75; fi
                  [ $count -ge 2 ] && exit 1' USR1
            # As rank 0 does once every worker has started: the line the script asked for.
            for a in "$@"; do case $a in COHORT_START_LINE=*) echo "${a#COHORT_START_LINE=}" >&2 ;; esac; done
            sleep 0.2
            echo $$ > "$FAKE_LOG.ready"
            while :; do sleep 0.05; done

            """, in: directory)
        for (mode, signals, status, lastLine) in [("checkpoint", 1, Int32(75), "stopped at step 3 by SIGINT; checkpoint run/checkpoints/3; continue with: x"),
                                                  ("lost", 2, 1, "error: the job ended on the stop request before rank 0 took a checkpoint (during start-up, or a second signal); nothing new to resume from")] {
            let log = directory.appendingPathComponent("usr1-\(mode)")
            let (process, err) = try startLaunch("local", ["-n", "1", "c.yaml"], in: directory,
                                                 environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path,
                                                               "FAKE_LOG": log.path, "FAKE_MODE": mode])
            XCTAssertTrue(MPIJob.waitFor(log.path + ".ready"), "the fake mpirun did not start")
            // A signal the script does not pass on would leave both waiting for ever.
            let fakePID = Int32((try? String(contentsOf: URL(fileURLWithPath: log.path + ".ready"), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            let watchdog = DispatchWorkItem { [pid = process.processIdentifier] in kill(fakePID, SIGKILL); kill(pid, SIGKILL) }
            DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
            defer { watchdog.cancel() }
            for _ in 0..<signals {
                kill(process.processIdentifier, SIGINT)
                usleep(1_500_000)  // past the script's one-second poll
            }
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, status, text)
            XCTAssertEqual(try String(contentsOf: log, encoding: .utf8), "\(signals)\n")
            XCTAssertEqual(text.split(separator: "\n").last.map(String.init), lastLine, text)
        }
    }

    /// A host whose daemon cannot be started (here a remote shell that fails, as ssh does for an
    /// unknown host): the launch says nothing ran, where it advised --resume auto as for a host lost mid-run.
    func testAHostThatCannotBeReachedIsNotALostRun() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let shell = try writeScript("#!/bin/sh\necho \"unreachable-rsh: $1: no route to host\" >&2\nexit 255\n", named: "unreachable-rsh", in: directory)
        try "localhost slots=1\nfarhost slots=1\n".write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": "--mca plm_rsh_agent \(shell.path)"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.err, "unreachable-rsh: farhost: no route to host\n"
                       + "error: mpirun could not start its daemon on every host (exit 255; the lines above may say why, as ssh's do, or a host could not connect back to this one: a firewall, a link down); no worker ran\n")
    }

    /// mpirun's reason, in one line: its page of text for an unknown binding, and nothing at all (it
    /// was hidden by --quiet) for a binding of more workers than cores.
    func testMpirunFailingBeforeTheWorkersSaysWhyInOneLine() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        for (workers, options, reason) in [(2, "--bind-to nonsense", "The specified binding policy is not recognized: Policy: nonsense"),
                                           (cores + 1, "--bind-to core", "binding more processes than cpus")] {
            let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "\(workers)", "c.yaml"], in: directory,
                                        environment: ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": options])
            XCTAssertEqual(result.status, 1, options)
            XCTAssertTrue(result.err.hasPrefix("error: mpirun failed (status 1): "), result.err)
            XCTAssertTrue(result.err.contains(reason), result.err)
            XCTAssertEqual(result.err.split(separator: "\n").count, 1, result.err)
        }
    }

    /// mpirun's messages name what ended the job: a program it could not start (exit 132) and a
    /// worker killed by a signal. Both were "a worker was killed by signal N" from the exit status
    /// alone (signal 4 for the first). An `mpirun` that prints OpenMPI 4.1's own texts stands in; one
    /// that ends before rank 0's start line said "continue with --resume auto" with nothing to resume.
    /// A daemon that cannot connect back prints its page on mpirun's standard output (through its
    /// remote shell): it was 9 lines there, the hosts now named in the one line.
    func testMpirunsReasonForTheEndIsNamed() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let dashes = String(repeating: "-", count: 74)
        let unlaunched = [dashes, "mpirun was unable to launch the specified application as it could not access",
                          "or execute an executable:", "", "Executable: /opt/cohort/bin/cohort", "Node: node7", "",
                          "while attempting to start process rank 1.", dashes]
        let killed = [dashes, "Primary job  terminated normally, but 1 process returned",
                      "a non-zero exit code. Per user-direction, the job has been aborted.", dashes,
                      dashes, "mpirun noticed that process rank 1 with PID 0 on node node7 exited on signal 9 (Killed).", dashes]
        let frame = String(repeating: "-", count: 60)
        func tcpPage(_ host: String) -> [String] {
            [frame, "A process or daemon was unable to complete a TCP connection", "to another process:",
             "  Local host:    \(host)", "  Remote host:   login1", "This is usually caused by a firewall on the remote host. Please",
             "check that any firewall (e.g., iptables) has been disabled and", "try again.", frame].map { ">" + $0 }
        }
        let unreachable = tcpPage("node8") + tcpPage("node7") + tcpPage("node8")
            + [dashes, "ORTE was unable to reliably start one or more daemons.", "This usually is caused by:", dashes]
        for (lines, status, expected) in [(unreachable, 1, "error: mpirun could not start its daemon on every host: node7, node8 could not open a TCP connection to login1 (a firewall there, a link down, or no interface in common: see --mca oob_tcp_if_include); no worker ran\n"),
                                          (unlaunched, 132, "error: mpirun could not run /opt/cohort/bin/cohort on node7 (no such file there, or not executable); no worker ran\n"),
                                          (killed, 137, "error: a worker (rank 1 on node7) was killed by signal 9 (Killed) and the job ended; continue with --resume auto\n"),
                                          ([], 213, "error: mpirun ended (exit 213) before the workers had started (a host lost, or mpirun killed); no worker ran\n")] {
            // A line that starts with ">" goes to standard output.
            let text = lines.map { $0.hasPrefix(">") ? "echo '\($0.dropFirst())'\n" : "echo '\($0)' >&2\n" }.joined()
            let path = try fakeMpirun("#!/bin/bash\n\(text)exit \(status)\n", in: directory)
            let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml"], in: directory,
                                        environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path])
            XCTAssertEqual(result.status, 1, result.err)
            XCTAssertEqual(result.err, expected)
            XCTAssertEqual(result.out, "")
        }
    }

    /// Standard output that cannot be written (a full disk; a closed pipe or terminal) leaves the run
    /// alone, its lines read and dropped: the reader of mpirun's output had ended at the first failed
    /// write, and mpirun, writing on, on SIGPIPE (a 400-step run killed at step 356, exit 1). An
    /// `mpirun` that prints 3,000 lines stands in.
    func testOutputThatCannotBeWrittenLeavesTheRunAlone() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let path = try fakeMpirun("#!/bin/bash\nfor i in $(seq 1 3000); do echo \"step $i\"; done\necho finished >&2\nexit 0\n", in: directory)
        let (process, err) = try startLaunch("local", ["-n", "2", "c.yaml"], in: directory,
                                             environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path],
                                             output: try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full")))
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, errText)
        XCTAssertEqual(errText, "finished\n")
    }

    /// A line of dashes that no second one closes was no message of mpirun's: it and the lines after
    /// it are printed as they came, where they had been held back to the end and lost.
    func testAnUnclosedFrameIsPrinted() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let dashes = String(repeating: "-", count: 30)
        let path = try fakeMpirun("#!/bin/bash\necho before\necho \(dashes)\necho '  after'\necho done: 3 steps\necho \(dashes) >&2\necho stray >&2\nexit 0\n", in: directory)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(result.out, "before\n\(dashes)\n  after\ndone: 3 steps\n")
        XCTAssertEqual(result.err, "\(dashes)\nstray\n")
    }

    /// A worker's last line of standard error without its newline (cut off as the job ended) was
    /// dropped, an error with it: mpirun's status alone was reported.
    func testALastErrorLineWithoutANewlineIsKept() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let path = try fakeMpirun("#!/bin/bash\nprintf 'error: c.yaml: cut off' >&2\nexit 1\n", in: directory)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml"], in: directory,
                                    environment: ["COHORT_BIN": try cohortBinary().path, "PATH": path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.err, "error: c.yaml: cut off\n")
    }

    /// A host's remote shell that never comes back (ssh to a host that hangs): mpirun waits for it
    /// forever, a stop request included, and said nothing. The launch now ends after
    /// COHORT_START_TIMEOUT seconds with one line, and at once on a stop request.
    func testARemoteShellThatHangsEndsTheLaunch() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 3)
        let shell = try writeScript("#!/bin/sh\nexec sleep 600\n", named: "hanging-rsh", in: directory)
        try "localhost slots=1\nfarhost slots=1\n".write(to: directory.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
        let environment = ["COHORT_BIN": try cohortBinary().path, "COHORT_MPIRUN_ARGS": "--mca plm_rsh_agent \(shell.path)"]
        let start = Date()
        let waited = try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                                    environment: environment.merging(["COHORT_START_TIMEOUT": "3"]) { $1 })
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
        XCTAssertEqual(waited.status, 1)
        XCTAssertEqual(waited.err, "error: the workers had not started 3 s after mpirun began: a host's remote shell has not come back (a host down or not answering ssh; COHORT_START_TIMEOUT sets the wait); no worker ran\n")

        let (process, err) = try startLaunch("hosts", ["hosts", "c.yaml"], in: directory, environment: environment)
        sleep(2)
        let stopAt = Date()
        kill(process.processIdentifier, SIGTERM)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertLessThan(Date().timeIntervalSince(stopAt), 10, text)
        XCTAssertEqual(process.terminationStatus, 1, text)
        XCTAssertTrue(text.hasPrefix("error: the job ended on the stop request before rank 0 took a checkpoint"), text)

        let refused = try runProcess(projectDirectory.appendingPathComponent("launch/hosts"), ["hosts", "c.yaml"], in: directory,
                                     environment: environment.merging(["COHORT_START_TIMEOUT": "soon"]) { $1 })
        XCTAssertEqual(refused.status, 2)
        XCTAssertEqual(refused.err, "error: COHORT_START_TIMEOUT: expected a number of seconds (0: no limit), got 'soon'\n")
    }

    /// A worker's error after set-up ends the job through MPI_Abort: its line was followed by two of
    /// mpirun's ("1 more process has sent help message ...", "Set MCA parameter ...").
    func testAWorkersErrorIsTheOnlyLine() throws {
        let directory = try temporaryDirectory(self)
        try writeSmallRun(in: directory, steps: 20)
        let result = try runProcess(projectDirectory.appendingPathComponent("launch/local"), ["-n", "2", "c.yaml", "--set", "optimizer.lr=1e30"],
                                    in: directory, environment: ["COHORT_BIN": try cohortBinary().path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.err.hasPrefix("error: step "), result.err)
        XCTAssertTrue(result.err.contains("the loss became NaN"), result.err)
        XCTAssertEqual(result.err.split(separator: "\n").count, 1, result.err)
    }
}
