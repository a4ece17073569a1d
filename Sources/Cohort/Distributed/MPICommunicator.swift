import CMPI
import Foundation

/// The world of `mpirun`'s workers, or a world of one when the binary runs alone (MPI's singleton start).
///
/// Every collective is a non-blocking MPI call polled against a deadline, so that a dead, stalled or
/// cut-off worker ends the job with an error naming the collective, the step and the rank instead of
/// hanging it.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    public var step = 0
    /// Whether the workers have passed `agreeOnSetup`, after which an error must abort the job.
    public private(set) var setupAgreed = false
    /// Seconds a collective may take before the job is ended (`distributed.timeout_s`).
    public var timeoutSeconds: Double = 60
    private let comm: MPI_Comm
    /// Whether MPI lets several threads call it at once (`MPI_THREAD_MULTIPLE`).
    private let threadsAllowed: Bool
    /// Microseconds to sleep between polls of a collective that has taken over 0.2 ms (0: yield
    /// the core instead): a communication thread that waits beside computation must leave it the core.
    private var pollSleep: UInt32 = 0
    /// Workspace of `allreduceSumBFloat16`, grown to the largest buffer it has summed.
    private let compressed = BFloat16Workspace()
    /// Workspace of `reduceScatterAllgatherSum`.
    let scatterWorkspace = ScatterWorkspace()
    /// The requests of `exchange` (2) and `exchangeWithAll` (2 per other worker).
    private let pointRequests: UnsafeMutablePointer<MPI_Request?>
    /// The float allreduce through shared memory, when every worker runs on this node (and
    /// `COHORT_NODE_SUM` is not `mpi`); nil: `reduceScatterAllgatherSum`'s messages.
    private var sharedSum: SharedMemorySum?
    /// The window that holds one buffer summed in place (`sharedSumBuffer`): the model's gradients.
    private var residentSum: SharedMemorySum?
    /// An unknown `COHORT_NODE_SUM`, reported by `checkEnvironment`.
    private var environmentError: CohortError?

    /// Starts MPI. Call once per process, before any other MPI call.
    public init() {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, cohort_mpi_thread_multiple(), &provided)
        comm = cohort_mpi_comm_world()
        threadsAllowed = provided >= cohort_mpi_thread_multiple()
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &n)
        rank = Int(r)
        worldSize = Int(n)
        pointRequests = .allocate(capacity: 2 * max(worldSize, 2))
        let nodeSum = ProcessInfo.processInfo.environment["COHORT_NODE_SUM"] ?? "shared"
        if !["shared", "mpi"].contains(nodeSum) {
            environmentError = CohortError("COHORT_NODE_SUM: unknown value '\(nodeSum)' (expected shared or mpi)")
        }
        if worldSize > 1 && nodeSum == "shared" && Self.sharesOneNode(comm) {
            sharedSum = makeSharedMemorySum()
        }
    }

    private func makeSharedMemorySum() -> SharedMemorySum {
        SharedMemorySum(comm: comm, rank: rank, worldSize: worldSize, barrier: { [unowned self] in try self.barrier() },
                        allAgree: { [unowned self] in try self.allgather([$0 ? 1 : 0]).allSatisfy { $0[0] == 1 } })
    }

    /// Throws if the environment asks for something this communicator does not know.
    public func checkEnvironment() throws {
        if let environmentError { throw environmentError }
    }

    /// Whether every worker of `comm` runs on this node (can map the same memory). Collective.
    private static func sharesOneNode(_ comm: MPI_Comm) -> Bool {
        var node: MPI_Comm?
        MPI_Comm_set_errhandler(comm, cohort_mpi_errors_return())
        let status = MPI_Comm_split_type(comm, cohort_mpi_comm_type_shared(), 0, cohort_mpi_info_null(), &node)
        MPI_Comm_set_errhandler(comm, cohort_mpi_errors_are_fatal())
        guard status == 0 else { return false }
        var size: Int32 = 0, worldSize: Int32 = 0
        MPI_Comm_size(node, &size)
        MPI_Comm_size(comm, &worldSize)
        MPI_Comm_free(&node)
        return size == worldSize
    }

    private init(duplicating parent: MPICommunicator, comm: MPI_Comm) {
        self.comm = comm
        rank = parent.rank
        worldSize = parent.worldSize
        threadsAllowed = parent.threadsAllowed
        timeoutSeconds = parent.timeoutSeconds
        setupAgreed = parent.setupAgreed
        pollSleep = 20
        pointRequests = .allocate(capacity: 2 * max(worldSize, 2))
    }

    deinit { pointRequests.deallocate() }

    /// A duplicate of this communicator (`MPI_Comm_dup`) for a communication thread, which waits
    /// for its collectives sleeping between polls rather than spinning.
    public func duplicate() throws -> Communicator? {
        guard worldSize > 1, threadsAllowed else { return nil }
        var copy: MPI_Comm?
        try check(MPI_Comm_dup(comm, &copy), "duplicate")
        guard let copy else { return nil }
        return MPICommunicator(duplicating: self, comm: copy)
    }

    public var sumsInSharedMemory: Bool { sharedSum != nil }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        if worldSize == 1 { return }
        if let residentSum, buffer == residentSum.residentBuffer {
            return try residentSum.sumInPlace(count: count, step: step, timeoutSeconds: timeoutSeconds)
        }
        if let sharedSum {
            if try sharedSum.sum(buffer, count: count, step: step, timeoutSeconds: timeoutSeconds) { return }
            self.sharedSum = nil
        }
        try reduceScatterAllgatherSum(buffer, count: count)
    }

    public func sharedSumBuffer(count: Int) throws -> UnsafeMutablePointer<Float>? {
        guard sharedSum != nil, residentSum == nil else { return nil }
        let window = makeSharedMemorySum()
        guard let buffer = try window.makeResident(count: count) else { return nil }
        residentSum = window
        return buffer
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        if worldSize == 1 { return }
        var request: MPI_Request? = cohort_mpi_request_null()
        try check(MPI_Iallreduce(cohort_mpi_in_place(), buffer, Int32(count), cohort_mpi_double(), cohort_mpi_sum(), comm, &request), "allreduce")
        try wait(&request, "allreduce")
    }

    public func allreduceSumBFloat16(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        if worldSize == 1 { return }
        let chunk = (count + worldSize - 1) / worldSize
        compressed.reserve(chunk: chunk, parts: worldSize)
        let send = compressed.send.pointer, receive = compressed.receive.pointer
        encodeBFloat16(buffer, send, count: count)
        (send + count).update(repeating: 0, count: chunk * worldSize - count)
        // Each worker sums one chunk of every worker's values, then every worker gathers all sums.
        var request: MPI_Request? = cohort_mpi_request_null()
        try check(MPI_Ialltoall(send, Int32(chunk), cohort_mpi_uint16(), receive, Int32(chunk), cohort_mpi_uint16(), comm, &request), "allreduce")
        try wait(&request, "allreduce")
        sumBFloat16Parts(receive, parts: worldSize, stride: chunk, compressed.sum.pointer, count: chunk,
                         workspace: compressed.workspace.pointer)
        try check(MPI_Iallgather(compressed.sum.pointer, Int32(chunk), cohort_mpi_uint16(), send, Int32(chunk), cohort_mpi_uint16(), comm, &request), "allreduce")
        try wait(&request, "allreduce")
        decodeBFloat16(send, buffer, count: count)
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws {
        if worldSize == 1 { return }
        var request: MPI_Request? = cohort_mpi_request_null()
        try check(MPI_Ibcast(buffer, Int32(byteCount), cohort_mpi_byte(), Int32(root), comm, &request), "broadcast")
        try wait(&request, "broadcast")
    }

    public func allgather(_ values: [UInt64]) throws -> [[UInt64]] {
        if worldSize == 1 { return [values] }
        var gathered = [UInt64](repeating: 0, count: values.count * worldSize)
        var request: MPI_Request? = cohort_mpi_request_null()
        try values.withUnsafeBytes { send in
            try gathered.withUnsafeMutableBytes { receive in
                try check(MPI_Iallgather(send.baseAddress, Int32(send.count), cohort_mpi_byte(),
                                         receive.baseAddress, Int32(send.count), cohort_mpi_byte(), comm, &request), "allgather")
                try wait(&request, "allgather")
            }
        }
        return (0..<worldSize).map { Array(gathered[($0 * values.count)..<(($0 + 1) * values.count)]) }
    }

    public func agreeOnSetup(failed: Bool) throws -> [Int] {
        let flags = try allgather([failed ? 1 : 0])
        setupAgreed = true
        return flags.indices.filter { flags[$0][0] != 0 }
    }

    public func barrier() throws {
        if worldSize == 1 { return }
        var request: MPI_Request? = cohort_mpi_request_null()
        try check(MPI_Ibarrier(comm, &request), "barrier")
        try wait(&request, "barrier")
    }

    /// Sends `count` floats to worker `to` while receiving `receiveCount` from worker `from`.
    func exchange(send: UnsafeMutablePointer<Float>, count: Int, to: Int, receive: UnsafeMutablePointer<Float>,
                  count receiveCount: Int, from: Int, operation: String) throws {
        pointRequests.initialize(repeating: cohort_mpi_request_null(), count: 2)
        try check(MPI_Irecv(receive, Int32(receiveCount), cohort_mpi_float(), Int32(from), 0, comm, pointRequests), operation)
        try check(MPI_Isend(send, Int32(count), cohort_mpi_float(), Int32(to), 0, comm, pointRequests + 1), operation)
        try wait(pointRequests, count: 2, operation)
    }

    /// With every other worker q at once: sends `send` floats and receives `receive`, as
    /// `messages(q)` gives them.
    func exchangeWithAll(operation: String, _ messages: (Int) -> (send: UnsafeMutablePointer<Float>, sendCount: Int,
                                                                  receive: UnsafeMutablePointer<Float>, receiveCount: Int)) throws {
        let others = worldSize - 1
        pointRequests.initialize(repeating: cohort_mpi_request_null(), count: 2 * others)
        for k in 0..<others {
            let q = (rank + 1 + k) % worldSize, m = messages(q)
            try check(MPI_Irecv(m.receive, Int32(m.receiveCount), cohort_mpi_float(), Int32(q), 0, comm, pointRequests + 2 * k), operation)
            try check(MPI_Isend(m.send, Int32(m.sendCount), cohort_mpi_float(), Int32(q), 0, comm, pointRequests + 2 * k + 1), operation)
        }
        try wait(pointRequests, count: 2 * others, operation)
    }

    /// Polls `request` until it completes or `timeoutSeconds` pass.
    private func wait(_ request: inout MPI_Request?, _ operation: String) throws {
        try withUnsafeMutablePointer(to: &request) { try wait($0, count: 1, operation) }
    }

    /// Polls `requests` until all complete or `timeoutSeconds` pass.
    private func wait(_ requests: UnsafeMutablePointer<MPI_Request?>, count: Int, _ operation: String) throws {
        var done: Int32 = 0
        try pollCollective(operation, step: step, rank: rank, timeoutSeconds: timeoutSeconds, sleepMicroseconds: pollSleep) {
            try check(MPI_Testall(Int32(count), requests, &done, cohort_mpi_statuses_ignore()), operation)
            return done != 0
        }
    }

    /// Ends the whole job at once: every worker exits with `code`.
    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }

    public func finalize() {
        sharedSum?.free()
        residentSum?.free()
        MPI_Finalize()
    }

    private func check(_ status: Int32, _ operation: String) throws {
        if status != 0 { throw CohortError("collective \(operation) at step \(step) failed on rank \(rank) (MPI error \(status))") }
    }
}

/// Calls `done` until it returns true: spinning 64 times, then yielding the core between calls
/// (with more workers than cores, a busy poll would starve the worker it waits for), or, with
/// `sleepMicroseconds`, sleeping once 0.2 ms have passed; a short wait (a small bucket, the last
/// one after backward) is caught spinning. Throws the collective's timeout error, naming
/// `operation`, `step` and `rank`, after `timeoutSeconds`.
///
/// A gap of more than half the timeout between two looks at the clock is this worker itself
/// stopped (SIGSTOP, a batch job suspended and resumed: `scontrol suspend`), not the others late:
/// the wait starts again. Otherwise every worker of a resumed job, or one that mpirun continues in
/// order to end it, would time out at once.
func pollCollective(_ operation: String, step: Int, rank: Int, timeoutSeconds: Double, sleepMicroseconds: UInt32 = 0,
                    until done: () throws -> Bool) throws {
    var start = DispatchTime.now().uptimeNanoseconds
    var looked = start
    var polls = 0
    while try !done() {
        polls += 1
        guard polls > 64 else { continue }
        // Looked at every poll, so that only a stop, never a yield or a sleep, makes a gap that long.
        let now = DispatchTime.now().uptimeNanoseconds
        if Double(now - looked) / 1e9 > timeoutSeconds / 2 { start = now }
        looked = now
        let elapsed = Double(now - start) / 1e9
        if elapsed > timeoutSeconds {
            throw CohortError(String(format: "collective %@ at step %d timed out on rank %d after %.0f s (distributed.timeout_s: %g): another worker stalled or was lost, or the link to its host; continue with --resume auto",
                                     operation, step, rank, elapsed, timeoutSeconds))
        }
        if sleepMicroseconds > 0 && now - start > 200_000 { usleep(sleepMicroseconds) } else { sched_yield() }
    }
}
