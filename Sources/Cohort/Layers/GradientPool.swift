/// The two buffers that the sequences at one depth of nesting take turns with for the gradients of
/// their children's outputs, so that a model holds two such gradients per depth instead of one per
/// layer (in backward only the gradient of a child's output and that of its input are live, and
/// sequences of one depth never run backward at the same time).
///
/// A sequence gives the containers among its children (`Residual`) the pool one level deeper,
/// since their branches run backward while the sequence's own two buffers are in use. Buffers only
/// grow, in `reserve`; a sequence resolves its pointers in the backward after it.
final class GradientPool<Element: Scalar> {
    private var buffers = [Buffer<Element>(count: 0), Buffer<Element>(count: 0)]
    private var next: GradientPool?

    /// The pool of the sequences nested one level below those that use this one.
    var deeper: GradientPool {
        if let next { return next }
        let pool = GradientPool()
        next = pool
        return pool
    }

    /// Makes buffer `slot` (0 or 1) hold at least `count` values.
    func require(_ count: Int, slot: Int) {
        if buffers[slot].count < count { buffers[slot] = Buffer(count: count) }
    }

    func pointer(_ slot: Int) -> UnsafeMutablePointer<Element> { buffers[slot].pointer }
}
