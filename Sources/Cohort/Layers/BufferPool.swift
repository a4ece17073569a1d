/// The two buffers that the sequences at one depth of nesting take turns with: for the gradients
/// of their children's outputs in training, and for the outputs themselves in inference
/// (`Model.reserveForInference`). A model so holds two such buffers per depth instead of one per
/// layer: in backward only the gradient of a child's output and that of its input are live, in an
/// inference forward only a child's input and its output, and sequences of one depth never run at
/// the same time.
///
/// A sequence gives the containers among its children (`Residual`) the pool one level deeper,
/// since their branches run while the sequence's own two buffers are in use. Buffers only grow, in
/// `reserve`; a sequence resolves its pointers in the forward or backward after it.
final class BufferPool<Element: Scalar> {
    private var buffers = [Buffer<Element>(count: 0), Buffer<Element>(count: 0)]
    private var next: BufferPool?

    /// The pool of the sequences nested one level below those that use this one.
    var deeper: BufferPool {
        if let next { return next }
        let pool = BufferPool()
        next = pool
        return pool
    }

    /// Makes buffer `slot` (0 or 1) hold at least `count` values.
    func require(_ count: Int, slot: Int) {
        if buffers[slot].count < count { buffers[slot] = Buffer(count: count) }
    }

    func pointer(_ slot: Int) -> UnsafeMutablePointer<Element> { buffers[slot].pointer }
}
