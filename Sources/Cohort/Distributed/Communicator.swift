/// The collective operations that training needs, over one group of workers.
///
/// A world of one (the single-process debug mode) runs the very same calls.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// The training step in progress, for messages about a collective that failed.
    var step: Int { get set }
    /// Whether `allreduceSum` of floats goes through memory that every worker maps (all of them on
    /// one host) rather than messages.
    var sumsInSharedMemory: Bool { get }
    /// Replaces each element by its sum over all workers.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// Memory for `count` floats that every worker maps, in which `allreduceSum` of that whole
    /// buffer adds the workers' values up where they lie, with nothing copied in or out; nil where
    /// the sum is not in shared memory or the memory cannot be had. Collective, once.
    func sharedSumBuffer(count: Int) throws -> UnsafeMutablePointer<Float>?
    /// Replaces each element by its sum over all workers, sending bfloat16 (`distributed.compress:
    /// bf16`): every worker's values rounded to bfloat16, summed in float32 in rank order, the sum
    /// rounded to bfloat16. Every worker gets the same values; they depend on the number of workers.
    func allreduceSumBFloat16(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Copies rank `root`'s bytes to every worker.
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws
    /// Every worker's `values` (the same count on each), in rank order.
    func allgather(_ values: [UInt64]) throws -> [[UInt64]]
    func barrier() throws
    /// A communicator over the same workers whose collectives never match this one's, for a
    /// second thread to use alongside (the gradient buckets of `GradientExchange`); nil in a world
    /// of one or where MPI cannot run two threads. Collective: every worker calls it, in the same order.
    func duplicate() throws -> Communicator?
    /// The collective that ends set-up: every worker says whether its set-up (config, data, model,
    /// checkpoint) failed, and learns which workers' did. Errors before it are met by every worker
    /// alike (the same config and data), so they can be reported once, by the lowest failing rank,
    /// and the job can end without aborting. Returns the failing ranks.
    func agreeOnSetup(failed: Bool) throws -> [Int]
}

extension Communicator {
    public var isCoordinator: Bool { rank == 0 }

    public func sharedSumBuffer(count: Int) throws -> UnsafeMutablePointer<Float>? { nil }

    /// Ends set-up when this worker's succeeded; throws `PeerSetupFailure` if another's failed.
    public func completeSetup() throws {
        let failed = try agreeOnSetup(failed: false)
        guard failed.isEmpty else { throw PeerSetupFailure(ranks: failed) }
    }
}

/// Thrown by a worker whose own set-up succeeded when another's failed: that worker reports the error.
public struct PeerSetupFailure: Error {
    public let ranks: [Int]
}

/// A communicator for one process without MPI: what the tests and the Double gradient checks use.
public final class SoloCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public var step = 0
    public var sumsInSharedMemory: Bool { false }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) {}
    public func allreduceSumBFloat16(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) {}
    public func allgather(_ values: [UInt64]) -> [[UInt64]] { [values] }
    public func barrier() {}
    public func duplicate() -> Communicator? { nil }
    public func agreeOnSetup(failed: Bool) -> [Int] { failed ? [0] : [] }
}

/// Allreduce for either element type, so that generic layers can call it.
extension Communicator {
    func allreduceSum<T: Scalar>(_ buffer: UnsafeMutablePointer<T>, count: Int) throws {
        if worldSize == 1 { return }
        if T.self == Float.self {
            try allreduceSum(UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: Float.self), count: count)
        } else if T.self == Double.self {
            try allreduceSum(UnsafeMutableRawPointer(buffer).assumingMemoryBound(to: Double.self), count: count)
        } else {
            preconditionFailure("allreduce of \(T.self) is not supported")
        }
    }
}
