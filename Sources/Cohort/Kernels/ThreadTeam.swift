import CPosix
import Foundation
import Synchronization

/// The threads of a lone process that share each kernel's work (fork-join), one per core.
///
/// Under mpirun every worker has a core of its own and runs one thread. A lone process would
/// otherwise leave its other cores to OpenBLAS's threads, which help inside a GEMM only: between
/// GEMMs (batch norm, dropout, the optimizer's update, the finiteness check) one core worked and the
/// others spun in `sched_yield` (perf, `cohort bench mlp`: 24 % of all samples). A team instead runs
/// the GEMMs (split by `Float.gemm`, OpenBLAS on one thread) and the long element-wise passes.
///
/// Every split depends on the team's size alone, never on timing: results are reproducible.
public final class ThreadTeam: @unchecked Sendable {
    /// The team kernels use; nil: everything runs on the calling thread.
    public nonisolated(unsafe) static var current: ThreadTeam?

    /// Threads including the caller's.
    public let size: Int
    /// Bumped by `run` to start the helpers on `task`.
    private let generation = Atomic<Int>(0)
    /// Helpers still working on the current task.
    private let pending = Atomic<Int>(0)
    /// Helpers asleep on `wakeUp` (after spinning `spinLimit` times without a task).
    private let sleepers = Atomic<Int>(0)
    private var task: ((Int) -> Void)?
    /// Whether a `run` is under way (set and read by the caller's thread; a helper sees it set).
    public private(set) var isRunning = false
    /// The multiply-adds below which a GEMM runs on one thread (OpenBLAS 0.3's own threshold).
    public static let gemmMinimum = 1 << 18
    private var mutex = pthread_mutex_t()
    private var wakeUp = pthread_cond_t()
    /// Spins before a helper sleeps: long enough to span the serial code between two parallel
    /// passes of a training step, short enough not to burn a core between steps of a slow loader.
    private let spinLimit = 200_000

    /// Starts `size - 1` helper threads, which live as long as the process. With `bind`, the caller
    /// and each helper are bound to a CPU of their own, the first `size` of the affinity mask.
    public init(size: Int, bind: Bool = false) {
        precondition(size >= 1)
        self.size = size
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wakeUp, nil)
        let cpus = bind ? (0..<size).map { Int32(cohort_allowed_cpu(Int32($0))) } : []
        if let first = cpus.first, first >= 0 { _ = cohort_bind_thread(first) }
        for member in 1..<max(size, 1) {
            let cpu = cpus.isEmpty ? -1 : cpus[member]
            let thread = Thread { [self] in
                if cpu >= 0 { _ = cohort_bind_thread(cpu) }
                self.serve(member: member)
            }
            thread.name = "cohort-team-\(member)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Runs `body(member)` for member 0..<size, member 0 on the calling thread, and returns when
    /// every one has. A `run` inside `body` (a kernel that splits, called from a share of another)
    /// runs all its members in turn on the thread that called it.
    public func run(_ body: (_ member: Int) -> Void) {
        if size == 1 || isRunning {
            for member in 0..<size { body(member) }
            return
        }
        isRunning = true
        defer { isRunning = false }
        withoutActuallyEscaping(body) { body in
            task = body
            pending.store(size - 1, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wakeUp)
                pthread_mutex_unlock(&mutex)
            }
            body(0)
            while pending.load(ordering: .acquiring) > 0 { cohort_spin_pause() }
            task = nil
        }
    }

    private func serve(member: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < spinLimit {
                    cohort_spin_pause()
                    continue
                }
                pthread_mutex_lock(&mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(&wakeUp, &mutex) }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(&mutex)
            }
            seen = generation.load(ordering: .acquiring)
            perform(member: member)
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// The task's reference is released before `pending` says the helper is done, as `run`'s
    /// `withoutActuallyEscaping` requires.
    @inline(never)
    private func perform(member: Int) { task!(member) }
}

extension ThreadTeam {
    /// The team's share of `0..<count` for `member`: contiguous, in multiples of `granule`
    /// elements (so that shares start on cache lines), the last taking the remainder.
    @inline(__always)
    func share(of count: Int, member: Int, granule: Int = 16) -> Range<Int> {
        let granules = (count + granule - 1) / granule
        let lower = min(count, granules * member / size * granule)
        let upper = member == size - 1 ? count : min(count, granules * (member + 1) / size * granule)
        return lower..<upper
    }
}

/// Runs `body` over `0..<count` split among the current team's threads (see `ThreadTeam.share`),
/// or whole on the calling thread when there is no team or `count < minimum`.
@inline(__always)
func forEachShare(of count: Int, minimum: Int = 1 << 15, granule: Int = 16, _ body: (Range<Int>) -> Void) {
    guard let team = ThreadTeam.current, count >= minimum else { return body(0..<count) }
    team.run { member in
        let range = team.share(of: count, member: member, granule: granule)
        if !range.isEmpty { body(range) }
    }
}

/// Values below which an element-wise pass runs on one thread (a few microseconds of work; a
/// fork-join of spinning threads costs about one).
let elementwiseMinimum = 8192

/// As `forEachShare`, for a pass over `count` rows (channels, samples) of `values` values in all:
/// split when `values` reaches `elementwiseMinimum`, however few the rows.
@inline(__always)
func forEachShare(of count: Int, values: Int, granule: Int = 1, _ body: (Range<Int>) -> Void) {
    forEachShare(of: count, minimum: values >= elementwiseMinimum ? 1 : .max, granule: granule, body)
}

/// Whether `test` holds for every share of `0..<count` (split as `forEachShare` splits it).
@inline(__always)
func allShares(of count: Int, minimum: Int = 1 << 15, _ test: (Range<Int>) -> Bool) -> Bool {
    guard let team = ThreadTeam.current, count >= minimum else { return test(0..<count) }
    return withUnsafeTemporaryAllocation(of: Bool.self, capacity: team.size) { results in
        team.run { member in results[member] = test(team.share(of: count, member: member)) }
        return results.allSatisfy { $0 }
    }
}
