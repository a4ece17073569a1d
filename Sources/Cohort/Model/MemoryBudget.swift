import Foundation

/// The memory one worker may fill, for the checks that refuse a model, batch or data set before
/// allocating it (an allocation that fails later ends the process with a signal): the least of
/// the machine's memory and its cgroup's limit (Slurm, containers), each shared among the workers
/// of this node, and the address space that `ulimit -v` leaves this process.
public struct MemoryBudget: Sendable {
    public let bytes: Double
    /// What limits it, for messages: "this machine's 23.5 GiB", "the 2.8 GiB that ulimit -v leaves this worker".
    public let description: String

    public init(bytes: Double, description: String) {
        self.bytes = bytes
        self.description = description
    }

    /// This process's budget now.
    public static func current() -> MemoryBudget {
        let workers = Double(LauncherEnvironment.workersOnThisNode)
        let share = workers > 1 ? String(format: ", shared by %.0f workers", workers) : ""
        var budget = MemoryBudget(bytes: Double(ProcessInfo.processInfo.physicalMemory) / workers,
                                  description: gibibytes("this machine's", Double(ProcessInfo.processInfo.physicalMemory)) + share)
        if let limit = cgroupMemoryLimit(), limit / workers < budget.bytes {
            budget = MemoryBudget(bytes: limit / workers, description: gibibytes("the", limit) + " of its cgroup's limit" + share)
        }
        // Under `ulimit -v`, the size of one OpenBLAS buffer is kept back besides the 20 % margin:
        // without it, a ResNet-110's eval under ulimit -v 900000, its batch cut to what 80 % of the
        // rest held, failed an allocation (SIGABRT), and under 1000000, before the reserve's
        // products overlapped, spun in OpenBLAS's mmap retries.
        if let left = addressSpaceLeft().map({ max(0, $0 - blasBufferBytes) }), left < budget.bytes {
            // With the workspace named, "80 % of the 0 MB" says by how much to raise the limit.
            budget = MemoryBudget(bytes: left, description: gibibytes("the", left) + " that ulimit -v leaves this worker beside OpenBLAS's \(memorySize(blasBufferBytes)) of workspace")
        }
        return budget
    }

    /// Whether `bytes` fit in 80 % of the budget (the rest for what is not counted).
    public func holds(_ bytes: Double) -> Bool { bytes <= self.bytes * 0.8 }

    /// What `holds` allows, for messages: "80 % of this machine's 23.5 GiB".
    public var allowance: String { "80 % of " + description }

    /// Throws where one sample's buffers, `perSample` bytes, do not fit: no batch size helps then,
    /// the model is what to change. `source`: the config's path, to begin the message with.
    func checkOneSample(_ perSample: Double, source: String? = nil) throws {
        guard !holds(perSample) else { return }
        throw CohortError((source.map { "\($0): " } ?? "") + "model.layers: the activations of one sample need about \(memorySize(perSample)), more than \(allowance); make the model smaller (fewer or narrower layers, a smaller model.input)")
    }
}

extension Model {
    /// The largest batch, up to `limit`, whose buffers fit in the budget, counted as training
    /// counts its own (twice the estimate, for workspace), for inference in batches of it (eval,
    /// predict, inspect on a checkpoint: their batches of 256 had ended a deep network's run with a
    /// failed allocation, under a limit its training passed): the buffers of
    /// `reserveForInference`, or with `keepingActivations` (inspect reads every layer's) those of
    /// `reserve`. Throws where one sample does not fit.
    public func inferenceBatch(upTo limit: Int, keepingActivations: Bool = false, budget: MemoryBudget = .current()) throws -> Int {
        let perSample = 2 * (keepingActivations ? activationBytes(maxBatch: 1) : inferenceBytes(maxBatch: 1))
        try budget.checkOneSample(perSample)
        return Int(min(Double(limit), max(1, (budget.bytes * 0.8 / perSample).rounded(.down))))
    }
}

private func gibibytes(_ prefix: String, _ bytes: Double) -> String {
    "\(prefix) \(memorySize(bytes))"
}

/// A size for messages: "1.3 GiB", or "26 MB" below a GiB (which "0.0 GiB" would hide).
func memorySize(_ bytes: Double) -> String {
    bytes < 1_073_741_824 ? String(format: "%.0f MB", bytes / 1_048_576) : String(format: "%.1f GiB", bytes / 1_073_741_824)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`), or nil
/// when there is none or it cannot be read.
private func cgroupMemoryLimit() -> Double? {
    guard let lines = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
    var limits: [Double] = []
    for line in lines.split(separator: "\n") {
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3 else { continue }
        let path = String(fields[2])
        let file: String
        if fields[0] == "0" && fields[1].isEmpty {
            file = "/sys/fs/cgroup\(path)/memory.max"
        } else if fields[1].split(separator: ",").contains("memory") {
            file = "/sys/fs/cgroup/memory\(path)/memory.limit_in_bytes"
        } else {
            continue
        }
        let text = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        // "max" (v2) or a number near 2^63 (v1): no limit.
        if let text, let value = Double(text), value < 1e18 { limits.append(value) }
    }
    return limits.min()
}

/// This process's `RLIMIT_AS` (`ulimit -v`) in bytes, or nil without one.
func addressSpaceLimit() -> Double? {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }  // RLIM_INFINITY
    return Double(limit.rlim_cur)
}

/// What `RLIMIT_AS` (`ulimit -v`) leaves of this process's address space, or nil without one.
func addressSpaceLeft() -> Double? {
    guard let limit = addressSpaceLimit() else { return nil }
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmSize:") }),
          let kilobytes = Double(line.dropFirst("VmSize:".count).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    else { return limit }
    return max(0, limit - kilobytes * 1024)
}
