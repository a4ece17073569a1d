import Foundation

/// A thread that alone runs the gradient collectives of every step, on a communicator of its own
/// (`Communicator.duplicate`), so that they overlap the backward pass that the calling thread runs.
///
/// Each step the caller hands over the buckets of `buckets` one by one, in order, as their
/// gradients become final (`hand`), then waits for the step's last one (`waitForStep`). Handing
/// over is one semaphore signal: no allocation and no lock per step. OpenMPI makes progress only
/// inside MPI calls, which is why a thread must keep calling it while the other computes
/// (`MPI_Iallreduce` per bucket, polled between layers, was slower than no overlap at all).
final class CommunicationThread {
    /// Runs the gradient collectives: owned by the thread.
    let communicator: Communicator
    let buckets: GradientBuckets
    private let gradients: UnsafeMutablePointer<Float>
    /// How this step's buckets travel; set by the caller before it hands over the first bucket.
    var compression = GradientCompression.none
    /// One signal per bucket handed over.
    private let ready = DispatchSemaphore(value: 0)
    /// One signal per step, after its last bucket.
    private let finished = DispatchSemaphore(value: 0)
    /// The step's first error, read by the caller after `finished` (which orders the accesses).
    private var failure: Error?

    /// `gradients`: the flat buffer the buckets index.
    init(communicator: Communicator, buckets: GradientBuckets, gradients: UnsafeMutablePointer<Float>) {
        self.communicator = communicator
        self.buckets = buckets
        self.gradients = gradients
        // The thread lives as long as the process: it waits on `ready` between steps.
        let thread = Thread { [self] in self.serve() }
        thread.name = "cohort-gradients"
        thread.start()
    }

    /// Bucket `buckets.ranges[i]` of this step is final, i being the number of earlier calls this step.
    func hand() { ready.signal() }

    /// Waits until every bucket of the step is summed over the workers; rethrows the first error
    /// (a timed-out or failed collective). Call once per step, after handing over every bucket.
    func waitForStep() throws {
        finished.wait()
        if let failure {
            self.failure = nil
            throw failure
        }
    }

    private func serve() {
        while true {
            var error: Error?
            for range in buckets.ranges {
                ready.wait()
                guard error == nil else { continue }
                do {
                    switch compression {
                    case .none: try communicator.allreduceSum(gradients + range.lowerBound, count: range.count)
                    case .bf16: try communicator.allreduceSumBFloat16(gradients + range.lowerBound, count: range.count)
                    }
                } catch let thrown {
                    error = thrown
                }
            }
            failure = error
            finished.signal()
        }
    }
}
