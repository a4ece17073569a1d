import CMPI
import Foundation
import Synchronization

/// The float allreduce of workers that all run on one node, through memory they all map
/// (`MPI_Win_allocate_shared`) instead of messages: worker r owns part r of the buffer (N parts);
/// each worker puts its values of the other parts in its slot of the window, sums its own part
/// over all workers, reading the others' values where they lie, and then copies the other parts'
/// sums from their owners' slots. Each worker reads and writes about twice the buffer, with no copy
/// through the kernel, no MPI message to progress and no communication thread. A window made the
/// home of one buffer (`makeResident`: the model's gradients) is summed where it lies instead: each
/// worker adds up its part across the slots and writes the sums into every slot, nothing copied in
/// or out.
///
/// Each element is summed in the order of `reduceScatterAllgatherSum` for the same number of
/// workers (a power of two: pairs at distance N/2 first, then N/4, ..., 1; other worlds: rank
/// order), so the two give bitwise the same sums.
///
/// The workers step through the phases on counters in the window (one cache line per worker): a
/// worker raises its counter when its phase is done and waits, polling, until every worker's has
/// reached the phase, for at most the communicator's timeout.
final class SharedMemorySum {
    private let comm: MPI_Comm
    private let rank: Int
    private let worldSize: Int
    private var window: MPI_Win? = cohort_mpi_win_null()
    /// Worker q's progress counter, in the window.
    private var counters: UnsafeMutablePointer<UnsafeMutablePointer<Atomic<UInt64>>>
    /// Worker q's slot: `capacity` floats, in the window.
    private var slots: UnsafeMutablePointer<UnsafeMutablePointer<Float>>
    private var capacity = 0
    /// This worker's slot when the window is the home of one buffer (`makeResident`), summed where it lies.
    private(set) var residentBuffer: UnsafeMutablePointer<Float>?
    /// Phases this worker has completed on the window (two per sum).
    private var phase: UInt64 = 0
    /// The partial sums of a power-of-two world's tree: `worldSize / 2` rows of `chunk`.
    private let partials: UnsafeMutablePointer<Float>
    /// The communicator's barrier, polled against its timeout.
    private let barrier: () throws -> Void
    /// Whether every worker says true (a collective of the communicator's).
    private let allAgree: (Bool) throws -> Bool
    private static let chunk = 1024
    private static let lineBytes = 64

    /// `comm`: a communicator whose workers all share this node's memory (`MPI_Comm_split_type`).
    init(comm: MPI_Comm, rank: Int, worldSize: Int, barrier: @escaping () throws -> Void,
         allAgree: @escaping (Bool) throws -> Bool) {
        self.comm = comm
        self.rank = rank
        self.worldSize = worldSize
        self.barrier = barrier
        self.allAgree = allAgree
        counters = .allocate(capacity: worldSize)
        slots = .allocate(capacity: worldSize)
        partials = .allocate(capacity: max(worldSize / 2, 1) * Self.chunk)
    }

    deinit {
        counters.deallocate()
        slots.deallocate()
        partials.deallocate()
    }

    /// Frees the window. Collective: every worker calls it, before `MPI_Finalize`.
    func free() {
        if window != cohort_mpi_win_null() { MPI_Win_free(&window) }
    }

    /// Replaces `buffer[0 ..< count]` by its sum over the workers, or returns false (having changed
    /// nothing) when the window cannot grow to `count` (see `reserve`). Collective, with the same
    /// `count` on every worker. `step` and `timeoutSeconds` are for the message of a worker that
    /// waits too long.
    func sum(_ buffer: UnsafeMutablePointer<Float>, count: Int, step: Int, timeoutSeconds: Double) throws -> Bool {
        if count > capacity, try !reserve(count) { return false }
        let mine = part(rank, of: count), slot = slots[rank]
        for q in 0..<worldSize where q != rank {
            let range = part(q, of: count)
            (slot + range.lowerBound).update(from: buffer + range.lowerBound, count: range.count)
        }
        try arrive(step: step, timeoutSeconds: timeoutSeconds)
        sumPart(mine, buffer: buffer)
        try arrive(step: step, timeoutSeconds: timeoutSeconds)
        for q in 0..<worldSize where q != rank {
            let range = part(q, of: count)
            (buffer + range.lowerBound).update(from: slots[q] + range.lowerBound, count: range.count)
        }
        return true
    }

    /// Makes the window the home of one buffer of `count` floats a worker, which `sum` then adds up
    /// in place: every worker sums its part across all the slots and writes the sums into each, so
    /// nothing is copied in or out (`sumInPlace`). Returns this worker's slot (where its values must
    /// be kept), or nil when the window cannot be made (see `reserve`). Collective, once.
    func makeResident(count: Int) throws -> UnsafeMutablePointer<Float>? {
        precondition(residentBuffer == nil && capacity == 0)
        guard try reserve(count) else { return nil }
        residentBuffer = slots[rank]
        return slots[rank]
    }

    /// Replaces the first `count` floats of the resident buffer (`makeResident`) by their sum over
    /// the workers, where they lie. Collective, with the same `count` on every worker.
    func sumInPlace(count: Int, step: Int, timeoutSeconds: Double) throws {
        precondition(residentBuffer != nil && count <= capacity, "sumInPlace needs a resident window of `count` floats")
        try arrive(step: step, timeoutSeconds: timeoutSeconds)
        sumIntoEverySlot(part(rank, of: count))
        try arrive(step: step, timeoutSeconds: timeoutSeconds)
    }

    /// Worker q's part of a buffer of `count`: whole cache lines of floats but the last.
    private func part(_ q: Int, of count: Int) -> Range<Int> {
        let lines = (count + 15) / 16
        return min(count, q * lines / worldSize * 16) ..< min(count, (q + 1) * lines / worldSize * 16)
    }

    /// Sums `range` over the workers into this worker's slot and `buffer` (this worker's own values
    /// are in `buffer`, the others' in their slots).
    private func sumPart(_ range: Range<Int>, buffer: UnsafeMutablePointer<Float>) {
        let out = slots[rank]
        func values(_ q: Int) -> UnsafeMutablePointer<Float> { q == rank ? buffer : slots[q] }
        if worldSize == 2 {
            let a = values(0), b = values(1)
            for i in range {
                let s = a[i] + b[i]
                out[i] = s
                buffer[i] = s
            }
            return
        }
        var start = range.lowerBound
        while start < range.upperBound {
            let n = min(Self.chunk, range.upperBound - start)
            sumChunk(start, n, values: values, into: out + start)
            start += n
        }
        (buffer + range.lowerBound).update(from: out + range.lowerBound, count: range.count)
    }

    /// Sums `range` over the workers' slots, each holding its worker's own values (`residentBuffer`),
    /// and writes the sums into every slot.
    private func sumIntoEverySlot(_ range: Range<Int>) {
        if worldSize == 2 {
            let a = slots[0], b = slots[1]
            for i in range {
                let s = a[i] + b[i]
                a[i] = s
                b[i] = s
            }
            return
        }
        var start = range.lowerBound
        while start < range.upperBound {
            let n = min(Self.chunk, range.upperBound - start)
            sumChunk(start, n, values: { slots[$0] }, into: partials)
            for q in 0..<worldSize { (slots[q] + start).update(from: partials, count: n) }
            start += n
        }
    }

    /// Sums elements `start ..< start + n` of every worker's values into `destination[0 ..< n]`, in
    /// the order the type's doc gives (a world of two adds its two values directly). `partials`'
    /// rows 1 and up are its scratch: `destination` may be row 0.
    private func sumChunk(_ start: Int, _ n: Int, values: (Int) -> UnsafeMutablePointer<Float>,
                          into destination: UnsafeMutablePointer<Float>) {
        if worldSize & (worldSize - 1) == 0 {
            func row(_ r: Int) -> UnsafeMutablePointer<Float> { r == 0 ? destination : partials + r * Self.chunk }
            let half = worldSize / 2
            for r in 0..<half {
                let a = values(r) + start, b = values(r + half) + start, s = row(r)
                for j in 0..<n { s[j] = a[j] + b[j] }
            }
            var distance = half / 2
            while distance >= 1 {
                for r in 0..<distance {
                    let s = row(r), other = row(r + distance)
                    for j in 0..<n { s[j] += other[j] }
                }
                distance /= 2
            }
        } else {
            destination.update(from: values(0) + start, count: n)
            for q in 1..<worldSize {
                let v = values(q) + start
                for j in 0..<n { destination[j] += v[j] }
            }
        }
    }

    /// Marks this worker's next phase done and waits until every worker's is.
    private func arrive(step: Int, timeoutSeconds: Double) throws {
        phase += 1
        counters[rank].pointee.store(phase, ordering: .releasing)
        try pollCollective("allreduce", step: step, rank: rank, timeoutSeconds: timeoutSeconds) {
            (0..<worldSize).allSatisfy { counters[$0].pointee.load(ordering: .acquiring) >= phase }
        }
    }

    /// A window of `count` floats a worker (and a cache line for its counter), or false if every
    /// worker's share would not fit in what /dev/shm (OpenMPI's backing directory for it) has free
    /// (its pages are taken as they are first written, and a full /dev/shm, as a container's 64 MB
    /// often is, would kill the job with SIGBUS then), or if MPI cannot make the window (no `osc sm`
    /// component). Collective.
    private func reserve(_ count: Int) throws -> Bool {
        free()
        let floats = (count + 15) / 16 * 16, bytes = Self.lineBytes + 4 * floats
        var space = statvfs()
        let fits = statvfs("/dev/shm", &space) == 0 && Int(space.f_bavail) * Int(space.f_frsize) >= 2 * worldSize * bytes
        guard try allAgree(fits) else { return false }
        var base: UnsafeMutableRawPointer?
        MPI_Comm_set_errhandler(comm, cohort_mpi_errors_return())
        let status = MPI_Win_allocate_shared(MPI_Aint(bytes), 1, cohort_mpi_info_null(), comm, &base, &window)
        MPI_Comm_set_errhandler(comm, cohort_mpi_errors_are_fatal())
        guard try allAgree(status == 0) else {
            window = cohort_mpi_win_null()
            return false
        }
        for q in 0..<worldSize {
            var size: MPI_Aint = 0, unit: Int32 = 0
            var segment: UnsafeMutableRawPointer?
            MPI_Win_shared_query(window, Int32(q), &size, &unit, &segment)
            guard let segment else { throw CohortError("shared memory for the gradient sum: no segment for rank \(q)") }
            counters[q] = segment.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
            slots[q] = (segment + Self.lineBytes).bindMemory(to: Float.self, capacity: floats)
        }
        counters[rank].initialize(to: Atomic(0))
        phase = 0
        capacity = floats
        try barrier()
        return true
    }
}
