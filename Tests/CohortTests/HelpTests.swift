import Foundation
import XCTest

/// Every command and launch script answers --help with its options and an example.
final class HelpTests: XCTestCase {
    func testEveryCommandAnswersHelpWithItsOptionsAndAnExample() throws {
        let expected: [String: [String]] = [
            "train": ["--resume", "--set", "--debug", "--steps"],
            "eval": ["--checkpoint", "--json", "--set"],
            "predict": ["--checkpoint", "--output", "--set"],
            "check": ["--samples", "--steps", "--coordinates", "--set"],
            "bench": ["--steps", "--batch", "--json"],
        ]
        for (command, options) in expected {
            let help = try runCohort([command, "--help"], in: projectDirectory)
            XCTAssertEqual(help.status, 0, command)
            XCTAssertTrue(help.out.contains("Examples:\n  cohort \(command)") || help.out.contains("Examples:\n  mpirun"),
                          "\(command): no example in\n\(help.out)")
            for option in options { XCTAssertTrue(help.out.contains(option), "\(command) --help lacks \(option)") }
        }
        let top = try runCohort(["--help"], in: projectDirectory)
        for command in expected.keys { XCTAssertTrue(top.out.contains("  \(command) "), "cohort --help lacks \(command)") }
    }

    func testEveryLaunchScriptAnswersHelpWithAnExample() throws {
        for name in ["local", "hosts", "slurm"] {
            let help = try runProcess(projectDirectory.appendingPathComponent("launch/\(name)"), ["--help"], in: projectDirectory)
            XCTAssertEqual(help.status, 0, name)
            XCTAssertTrue(help.out.hasPrefix("usage: "), "\(name): \(help.out)")
            XCTAssertTrue(help.out.contains("Environment:\n  COHORT_BIN"), name)
            XCTAssertTrue(help.out.contains("Example:\n  "), "\(name): no example")
        }
    }
}
