/// The gradient allreduce of a training step, overlapped with its backward pass: as the model
/// reports gradients final (`Model.onParametersFinished`), the buckets they complete go to the
/// communication thread, while backward goes on with the layers before.
///
/// The buckets are the same every step, and `reduceScatterAllgatherSum` sums each element in an
/// order fixed by the number of workers alone, so the result is bitwise that of `TrainingStep`
/// without overlap, on any number of workers. Batch norm's own collectives
/// stay on the model's communicator, in their order, beside the thread's.
final class GradientExchange {
    private let thread: CommunicationThread
    private let ranges: [Range<Int>]
    private let gradients: UnsafeMutablePointer<Float>
    /// Buckets handed over this step.
    private var handed = 0
    /// Whether this backward's gradients are the step's (the last micro-batch's).
    private var armed = false
    /// Earlier micro-batches' gradients, added to each bucket before it is sent.
    private var adding: UnsafePointer<Float>?

    /// `communicator`: one of the exchange's own (`Communicator.duplicate`), used by its thread alone.
    init(model: Model<Float>, communicator: Communicator, buckets: GradientBuckets) {
        gradients = model.gradients.pointer
        ranges = buckets.ranges
        thread = CommunicationThread(communicator: communicator, buckets: buckets, gradients: model.gradients.pointer)
        model.onParametersFinished = { [weak self] offset in self?.parametersFinished(from: offset) }
    }

    /// The next backward is the step's last: send its buckets as they finish, `adding` (if any)
    /// added to each first.
    func begin(step: Int, compression: GradientCompression, adding: UnsafePointer<Float>?) {
        thread.communicator.step = step
        thread.compression = compression
        self.adding = adding
        handed = 0
        armed = true
    }

    /// Hands over every bucket that lies wholly at or after `offset`.
    private func parametersFinished(from offset: Int) {
        guard armed else { return }
        while handed < ranges.count && ranges[handed].lowerBound >= offset {
            if let adding {
                let range = ranges[handed]
                for i in range { gradients[i] += adding[i] }
            }
            thread.hand()
            handed += 1
        }
    }

    /// After the last backward: hands over what is left and waits until every bucket is summed.
    func finish() throws {
        parametersFinished(from: 0)
        armed = false
        try thread.waitForStep()
    }
}
