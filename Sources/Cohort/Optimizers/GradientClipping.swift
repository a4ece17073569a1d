/// Clips the gradient by its global norm, as `torch.nn.utils.clip_grad_norm_` (Pascanu, Mikolov &
/// Bengio, 2013): with n = sqrt(sum of g_i^2) over all `count` values (accumulated in Double),
///
///     g = g * min(1, max_norm / (n + 1e-6))
///
/// so the direction is kept and the length is at most about `maxNorm`. Returns n, before clipping.
/// g: the flat gradient `[count]`, after the allreduce (every worker clips the same values alike).
@discardableResult
public func clipGradientNorm(_ g: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double) -> Double {
    var sumOfSquares = 0.0
    for i in 0..<count {
        let value = Double(g[i])
        sumOfSquares += value * value
    }
    let norm = sumOfSquares.squareRoot()
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        let scale = Float(coefficient)
        for i in 0..<count { g[i] *= scale }
    }
    return norm
}
