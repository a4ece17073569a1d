import Foundation
import XCTest

/// `launch/slurm` without Slurm: fake `srun`, `mpirun` and `sbatch` on PATH record their arguments,
/// and the fake launcher ends with the status a real job would.
final class SlurmScriptTests: XCTestCase {
    var directory: URL!
    var log: URL { directory.appendingPathComponent("log") }
    let script = projectDirectory.appendingPathComponent("launch/slurm")

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self)
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: log, withIntermediateDirectories: true)
        // A launcher that ends with FAKE_STATUS, or with FAKE_WAIT waits for SIGTERM (or SIGUSR1) and then exits 75
        // (what the workers do when asked to stop).
        // `srun --mpi=list` answers as Slurm 22.05's does, with FAKE_MPI_PLUGINS.
        let launcher = """
            #!/usr/bin/env bash
            if [ "$1" = --mpi=list ]; then
                echo "MPI plugin types are..."
                printf '\\t%s\\n' ${FAKE_MPI_PLUGINS:-pmix none cray_shasta pmi2}
                exit 0
            fi
            printf '%s\\n' "$@" > "$FAKE_LOG/$(basename "$0").args"
            if [ -n "${FAKE_WAIT:-}" ]; then
                trap 'echo TERM >> "$FAKE_LOG/$(basename "$0").signals"; exit 75' TERM
                trap 'echo USR1 >> "$FAKE_LOG/$(basename "$0").signals"; exit 75' USR1
                echo $$ > "$FAKE_LOG/$(basename "$0").pid"
                # As rank 0 does once every worker has started (mpirun under run_mpirun): the line asked for.
                for a in "$@"; do case $a in COHORT_START_LINE=*) echo "${a#COHORT_START_LINE=}" >&2 ;; esac; done
                sleep 0.2
                touch "$FAKE_LOG/started"
                while :; do sleep 0.05; done
            fi
            exit "${FAKE_STATUS:-0}"
            """
        let sbatch = """
            #!/usr/bin/env bash
            printf '%s\\n' "$@" > "$FAKE_LOG/sbatch.args"
            echo "$COHORT_SLURM_RESUBMITS $COHORT_SLURM_SCRIPT" > "$FAKE_LOG/sbatch.env"
            echo "Submitted batch job 43"
            """
        // `squeue --json` as Slurm 22.05 prints it, a job started at 1000 s with a limit of 60 min; with
        // FAKE_SQUEUE_LISTS, as later versions do (data_parser 0.0.39 on): the state a list of flags,
        // the times objects (a preemption time not set).
        let squeue = """
            #!/usr/bin/env bash
            if [ -n "${FAKE_SQUEUE_LISTS:-}" ]; then
                stamp() { printf '{\\n        "set": %s,\\n        "infinite": false,\\n        "number": %s\\n      }' "$1" "$2"; }
                preempt=$(if [ "${FAKE_PREEMPT_TIME:-0}" = 0 ]; then stamp false 0; else stamp true "$FAKE_PREEMPT_TIME"; fi)
                printf '{\\n  "jobs": [\\n    {\\n      "end_time": %s,\\n      "job_id": 42,\\n      "job_state": [\\n        "%s"\\n      ],\\n' \\
                    "$(stamp true "${FAKE_END_TIME:-4600}")" "${FAKE_JOB_STATE:-RUNNING}"
                printf '      "preempt_time": %s,\\n      "start_time": %s,\\n      "time_limit": %s\\n    }\\n  ]\\n}\\n' \\
                    "$preempt" "$(stamp true 1000)" "$(stamp true 60)"
                exit 0
            fi
            printf '{\\n  "jobs": [\\n'
            # Slurm 22.05 ignores -j and lists every job it knows: with FAKE_SQUEUE_OTHER, a finished one first.
            if [ -n "${FAKE_SQUEUE_OTHER:-}" ]; then
                printf '    {\\n      "end_time": 2000,\\n      "job_id": 41,\\n      "job_state": "COMPLETED",\\n'
                printf '      "preempt_time": 0,\\n      "start_time": 1000,\\n      "time_limit": 60\\n    },\\n'
            fi
            printf '    {\\n      "end_time": %s,\\n      "job_id": 42,\\n      "job_state": "%s",\\n' \\
                "${FAKE_END_TIME:-4600}" "${FAKE_JOB_STATE:-RUNNING}"
            printf '      "preempt_time": %s,\\n      "start_time": 1000,\\n      "time_limit": 60\\n    }\\n  ]\\n}\\n' "${FAKE_PREEMPT_TIME:-0}"
            """
        // Slurm signals the job's steps: here, the fake srun.
        let scancel = """
            #!/usr/bin/env bash
            printf '%s\\n' "$@" > "$FAKE_LOG/scancel.args"
            kill -TERM "$(cat "$FAKE_LOG/srun.pid")"
            """
        for (name, text) in [("srun", launcher), ("mpirun", launcher), ("sbatch", sbatch), ("squeue", squeue), ("scancel", scancel)] {
            let url = bin.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
    }

    func environment(_ extra: [String: String]) -> [String: String] {
        ["PATH": directory.appendingPathComponent("bin").path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
         "SLURM_JOB_ID": "42", "COHORT_BIN": "/bin/true", "FAKE_LOG": log.path, "COHORT_SLURM_RESUBMITS": "",
         "COHORT_SLURM_SCRIPT": "", "COHORT_LAUNCHER": "", "COHORT_SBATCH_ARGS": "", "COHORT_SRUN_ARGS": "",
         "SLURM_MPI_TYPE": ""].merging(extra) { $1 }
    }

    func slurm(_ arguments: [String], _ extra: [String: String] = [:]) throws -> ProcessResult {
        try runProcess(URL(fileURLWithPath: "/bin/bash"), [script.path] + arguments, in: directory, environment: environment(extra))
    }

    func recorded(_ name: String) -> [String]? {
        (try? String(contentsOf: log.appendingPathComponent(name), encoding: .utf8)).map { $0.split(separator: "\n").map(String.init) }
    }

    func testHelpShowsOptionsAndAnExample() throws {
        let help = try slurm(["--help"])
        XCTAssertEqual(help.status, 0)
        for text in ["usage: sbatch", "COHORT_LAUNCHER", "COHORT_BIN", "--resume auto", "Example:"] {
            XCTAssertTrue(help.out.contains(text), "\(text) missing from:\n\(help.out)")
        }
    }

    func testTheHeaderAsksSlurmToWarnBeforeTheTimeLimit() throws {
        let text = try String(contentsOf: script, encoding: .utf8)
        XCTAssertTrue(text.contains("\n#SBATCH --signal=B:USR1@120\n"))
        XCTAssertTrue(text.contains("\n#SBATCH --time="))
    }

    func testAnInterruptedRunResubmitsItselfToResume() throws {
        let result = try slurm(["c.yaml", "--resume", "runs/x/checkpoints/5", "--set", "train.epochs=3"], ["FAKE_STATUS": "75"])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(recorded("srun.args"), ["--mpi=pmix", "/bin/true", "train", "c.yaml", "--resume", "runs/x/checkpoints/5", "--set", "train.epochs=3"])
        XCTAssertEqual(recorded("sbatch.args"), [script.path, "c.yaml", "--set", "train.epochs=3", "--resume", "auto"])
        XCTAssertEqual(recorded("sbatch.env"), ["1 \(script.path)"])
        XCTAssertTrue(result.err.contains("resubmitted to resume: Submitted batch job 43"), result.err)
    }

    func testAFinishedRunIsNotResubmitted() throws {
        let result = try slurm(["c.yaml"], ["FAKE_STATUS": "0"])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(recorded("srun.args"), ["--mpi=pmix", "/bin/true", "train", "c.yaml"])
        XCTAssertNil(recorded("sbatch.args"))
    }

    /// A site's MpiDefault (often none) cannot start OpenMPI's workers: srun gets the PMIx plugin
    /// where it has one, else PMI-2, else the site's default.
    func testSrunGetsThePMIPluginItHas() throws {
        for (plugins, expected) in [("pmix none pmi2", ["--mpi=pmix"]), ("none cray_shasta pmi2", ["--mpi=pmi2"]), ("none", [])] {
            _ = try slurm(["c.yaml"], ["FAKE_MPI_PLUGINS": plugins])
            XCTAssertEqual(recorded("srun.args"), expected + ["/bin/true", "train", "c.yaml"], plugins)
        }
    }

    func testAUsersMPIPluginWins() throws {
        _ = try slurm(["c.yaml"], ["COHORT_SRUN_ARGS": "--exclusive --mpi=pmi2"])
        XCTAssertEqual(recorded("srun.args"), ["--exclusive", "--mpi=pmi2", "/bin/true", "train", "c.yaml"])
        _ = try slurm(["c.yaml"], ["SLURM_MPI_TYPE": "pmi2"])
        XCTAssertEqual(recorded("srun.args"), ["/bin/true", "train", "c.yaml"])
    }

    func testAFailedRunIsNotResubmitted() throws {
        let result = try slurm(["c.yaml"], ["FAKE_STATUS": "1"])
        XCTAssertEqual(result.status, 1)
        XCTAssertNil(recorded("sbatch.args"))
    }

    /// `scancel JOBID` (also with --signal=KILL) sends SIGTERM before SIGKILL: the workers checkpoint,
    /// but a cancelled job stays stopped.
    func testACancelledJobIsNotResubmitted() throws {
        for (state, end) in [("CANCELLED", "1010"), ("COMPLETING", "1010")] {
            let result = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "FAKE_JOB_STATE": state, "FAKE_END_TIME": end])
            XCTAssertEqual(result.status, 75)
            XCTAssertNil(recorded("sbatch.args"), state)
            XCTAssertTrue(result.err.contains("the job was cancelled: not resubmitted"), result.err)
        }
    }

    /// Ending at the time limit, or pre-empted, is not a cancellation.
    func testAJobEndingAtItsTimeLimitOrPreemptedIsResubmitted() throws {
        for layout in ["", "lists"] {
            for (end, preempted) in [("4600", "0"), ("1010", "1005")] {
                try? FileManager.default.removeItem(at: log.appendingPathComponent("sbatch.args"))
                let result = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "FAKE_JOB_STATE": "COMPLETING", "FAKE_END_TIME": end,
                                                    "FAKE_PREEMPT_TIME": preempted, "FAKE_SQUEUE_LISTS": layout])
                XCTAssertEqual(result.status, 0, result.err)
                XCTAssertNotNil(recorded("sbatch.args"), "\(end) \(preempted) \(layout)")
            }
        }
    }

    /// Slurm 22.05 lists every job whatever -j says: the cancelled job is found among them (a job
    /// finished before it, listed first, had been read, and the cancelled run resubmitted).
    func testACancelledJobListedAfterAnotherIsNotResubmitted() throws {
        let result = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "FAKE_JOB_STATE": "CANCELLED", "FAKE_END_TIME": "1010", "FAKE_SQUEUE_OTHER": "1"])
        XCTAssertEqual(result.status, 75)
        XCTAssertNil(recorded("sbatch.args"))
        XCTAssertTrue(result.err.contains("the job was cancelled: not resubmitted"), result.err)
        let running = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "FAKE_JOB_STATE": "RUNNING", "FAKE_SQUEUE_OTHER": "1"])
        XCTAssertEqual(running.status, 0, running.err)
        XCTAssertNotNil(recorded("sbatch.args"), "a signalled job still running is resubmitted")
    }

    /// Later Slurm versions print the state as a list and the times as objects.
    func testACancelledJobIsNotResubmittedOnLaterSlurmVersions() throws {
        for (state, end) in [("CANCELLED", "1010"), ("COMPLETING", "1010")] {
            let result = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "FAKE_JOB_STATE": state, "FAKE_END_TIME": end, "FAKE_SQUEUE_LISTS": "1"])
            XCTAssertEqual(result.status, 75)
            XCTAssertNil(recorded("sbatch.args"), state)
            XCTAssertTrue(result.err.contains("the job was cancelled: not resubmitted"), result.err)
        }
    }

    /// A limit that is not a number would be no limit (bash's test fails, and the job resubmits itself for ever).
    func testALimitThatIsNotANumberIsRefused() throws {
        let result = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "COHORT_SLURM_MAX_RESUBMITS": "abc"])
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.err, "error: COHORT_SLURM_MAX_RESUBMITS must be a whole number, got 'abc'\n")
        XCTAssertNil(recorded("srun.args"), "nothing started")
        XCTAssertNil(recorded("sbatch.args"))
    }

    func testResubmissionsStopAtTheLimit() throws {
        let result = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "COHORT_SLURM_RESUBMITS": "3", "COHORT_SLURM_MAX_RESUBMITS": "3"])
        XCTAssertEqual(result.status, 75)
        XCTAssertNil(recorded("sbatch.args"))
        XCTAssertTrue(result.err.contains("already resubmitted 3 times"), result.err)
    }

    func testTheResubmissionCountGrows() throws {
        _ = try slurm(["c.yaml"], ["FAKE_STATUS": "75", "COHORT_SLURM_RESUBMITS": "4", "COHORT_SBATCH_ARGS": "-N 2 --time=2:00:00"])
        XCTAssertEqual(recorded("sbatch.env"), ["5 \(script.path)"])
        XCTAssertEqual(recorded("sbatch.args"), ["-N", "2", "--time=2:00:00", script.path, "c.yaml", "--resume", "auto"])
    }

    /// Slurm's warning (SIGUSR1 to the batch shell) reaches the workers as one SIGTERM, through
    /// scancel (srun would kill them on a SIGTERM of its own); they checkpoint and exit 75, and the
    /// job resubmits itself.
    func testTheWarningSignalIsForwardedAndTheRunResubmitted() throws {
        try checkSignalForwarding(launcher: "srun")
        XCTAssertEqual(recorded("scancel.args"), ["--signal=TERM", "42"])
    }

    func testMpirunLauncherForwardsTheSignalToo() throws {
        try checkSignalForwarding(launcher: "mpirun")
        XCTAssertNil(recorded("scancel.args"), "mpirun passes SIGTERM on itself")
        let arguments = try XCTUnwrap(recorded("mpirun.args"))
        XCTAssertEqual(Array(arguments.suffix(3)), ["/bin/true", "train", "c.yaml"])
    }

    func checkSignalForwarding(launcher: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, "c.yaml"]
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment(["FAKE_WAIT": "1", "COHORT_LAUNCHER": launcher])) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        XCTAssertTrue(MPIJob.waitFor(log.appendingPathComponent("started").path, timeout: 20), "the launcher did not start")
        kill(process.processIdentifier, SIGUSR1)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, message)
        // mpirun gets SIGUSR1, which it hands to every worker without ending the job (launch/common.sh).
        XCTAssertEqual(recorded("\(launcher).signals"), [launcher == "mpirun" ? "USR1" : "TERM"], "exactly one stop signal")
        XCTAssertEqual(recorded("sbatch.args"), [script.path, "c.yaml", "--resume", "auto"])
        XCTAssertTrue(message.contains("SIGUSR1: asking the workers to checkpoint and stop"), message)
    }

    func testOutsideASlurmJobItSaysHowToSubmit() throws {
        let result = try slurm(["c.yaml"], ["SLURM_JOB_ID": ""])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.err.hasPrefix("error: launch/slurm runs inside a Slurm job"), result.err)
    }
}
