/// The collective operations that training needs, over one group of workers.
///
/// A world of one (the single-process debug mode) runs the very same calls.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// The training step in progress, for messages about a collective that failed.
    var step: Int { get set }
    /// Replaces each element by its sum over all workers.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// Copies rank `root`'s bytes to every worker.
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws
    /// Every worker's `values` (the same count on each), in rank order.
    func allgather(_ values: [UInt64]) throws -> [[UInt64]]
    func barrier() throws
}

extension Communicator {
    public var isCoordinator: Bool { rank == 0 }
}

/// A communicator for one process without MPI: what the tests and the Double gradient checks use.
public final class SoloCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public var step = 0
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) {}
    public func allgather(_ values: [UInt64]) -> [[UInt64]] { [values] }
    public func barrier() {}
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
