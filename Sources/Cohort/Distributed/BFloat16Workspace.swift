/// The buffers of a bfloat16 allreduce over `parts` workers in chunks of `chunk` values: allocated
/// at the first (largest) call and kept, so that the training step allocates nothing.
final class BFloat16Workspace {
    /// `[parts, chunk]`: this worker's values to send, then the gathered sums.
    private(set) var send = Buffer<UInt16>(count: 0)
    /// `[parts, chunk]`: every worker's values of this worker's chunk.
    private(set) var receive = Buffer<UInt16>(count: 0)
    /// `[chunk]`: this worker's chunk summed, as bfloat16 and in float32.
    private(set) var sum = Buffer<UInt16>(count: 0)
    private(set) var workspace = Buffer<Float>(count: 0)

    func reserve(chunk: Int, parts: Int) {
        guard chunk * parts > send.count else { return }
        send = Buffer(count: chunk * parts)
        receive = Buffer(count: chunk * parts)
        sum = Buffer(count: chunk)
        workspace = Buffer(count: chunk)
    }
}
