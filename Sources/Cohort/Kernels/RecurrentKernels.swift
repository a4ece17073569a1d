import CPosix

/// The element-wise passes of one time step of the recurrent cells, over a batch; the layers
/// (`LSTM`, `GRU`, `RNN`) do the matrix products around them.
///
/// Layout, batch first: a buffer `[N, T, K]` holds row (n, t) at `(n * T + t) * K`, and each kernel
/// handles step `t` of every sample. `hidden` `[N, T, S]` (rows of S >= H values, h_{t-1} first:
/// `RecurrentCore.hiddenStride`) and `cells` `[N, T, H]` hold the state each step starts from,
/// `hidden[n, t] = h_{t-1}`: slot 0 is the initial zero state (never written), and a step writes
/// its new state into slot t + 1 (the last step has none). The layer's output row n
/// of step t is at `output + n * outputStride`; `output` is nil at steps whose state is not
/// returned, `outputGradient` likewise. `hiddenGradient` and `cellGradient` `[N, H]` carry dL/dh
/// and dL/dc from step t + 1 back to step t.

/// One LSTM step (Hochreiter and Schmidhuber 1997, with the forget gate; PyTorch's formulation):
///
///     a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
///     i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
///     c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
///
/// gates: `[N, T, 4H]`, in: a, out: i, f, g, o. cells, cellTanh: `[N, T, H]`, cellTanh[n, t] =
/// tanh(c_t); hidden: `[N, T, S]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func lstmForwardStep<T: Scalar>(
    _ t: Int, gates: UnsafeMutablePointer<T>, cells: UnsafeMutablePointer<T>, cellTanh: UnsafeMutablePointer<T>,
    hidden: UnsafeMutablePointer<T>, hiddenStride: Int,
    output: UnsafeMutablePointer<T>?, outputStride: Int, batch: Int, steps: Int, hiddenSize h: Int
) {
    let hasNext = t + 1 < steps
    for n in 0..<batch {
        let row = n * steps + t
        let a = gates + row * 4 * h
        let previousCell = cells + row * h
        let nextCell = previousCell + h, nextHidden = hidden + (row + 1) * hiddenStride
        let tanhC = cellTanh + row * h
        // One pass per activation, each a plain loop over contiguous values that vectorises.
        for k in 0..<2 * h { a[k] = sigmoid(a[k]) }
        for k in 2 * h..<3 * h { a[k] = fastTanh(a[k]) }
        for k in 3 * h..<4 * h { a[k] = sigmoid(a[k]) }
        let i = a, f = a + h, g = a + 2 * h, o = a + 3 * h
        if hasNext {
            for j in 0..<h {
                let c = f[j] * previousCell[j] + i[j] * g[j]
                nextCell[j] = c
                let tc = fastTanh(c)
                tanhC[j] = tc
                nextHidden[j] = o[j] * tc
            }
        } else {
            for j in 0..<h { tanhC[j] = fastTanh(f[j] * previousCell[j] + i[j] * g[j]) }
        }
        if let output {
            let out = output + n * outputStride
            for j in 0..<h { out[j] = o[j] * tanhC[j] }
        }
    }
}

/// Backward of `lstmForwardStep` at step t, from dh = hiddenGradient + dy_t and the carried dc:
///
///     dc = dc_carry + dh o (1 - tanh²(c_t)),  da_o = dh tanh(c_t) o (1 - o)
///     da_i = dc g i (1 - i),  da_f = dc c_{t-1} f (1 - f),  da_g = dc i (1 - g²)
///     dc_carry = dc f
///
/// gates: `[N, T, 4H]` activations i, f, g, o; gateGradients: `[N, T, 4H]`, row (n, t) written
/// with da (it may be gates: each value is read before its place is written). hiddenGradient is
/// left holding dh; the caller then sets it to da_t W_hh for step t - 1.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func lstmBackwardStep<T: Scalar>(
    _ t: Int, gates: UnsafePointer<T>, cells: UnsafePointer<T>, cellTanh: UnsafePointer<T>,
    gateGradients: UnsafeMutablePointer<T>, hiddenGradient: UnsafeMutablePointer<T>, cellGradient: UnsafeMutablePointer<T>,
    outputGradient: UnsafePointer<T>?, outputStride: Int, batch: Int, steps: Int, hiddenSize h: Int
) {
    for n in 0..<batch {
        let row = n * steps + t
        let i = gates + row * 4 * h, f = i + h, g = i + 2 * h, o = i + 3 * h
        let da = gateGradients + row * 4 * h
        let previousCell = cells + row * h, tanhC = cellTanh + row * h
        // The next sample's rows lie T rows further on, where the hardware prefetcher does not look.
        if n + 1 < batch {
            prefetch(i + steps * 4 * h, count: 4 * h)
            prefetch(previousCell + steps * h, count: h)
            prefetch(tanhC + steps * h, count: h)
        }
        let dh = hiddenGradient + n * h, dc = cellGradient + n * h
        if let outputGradient {
            let dy = outputGradient + n * outputStride
            for j in 0..<h { dh[j] += dy[j] }
        }
        // In vectors (`VectorLanes`): as plain loops, the scalar copies ran.
        for v in VectorLanes.over(h) {
            let dhv = v.load(dh), ov = v.load(o), tc = v.load(tanhC)
            let iv = v.load(i), fv = v.load(f), gv = v.load(g)
            let dcv = v.load(dc) + dhv * ov * (1 - tc * tc)
            v.store(dhv * tc * ov * (1 - ov), da + 3 * h)
            v.store(dcv * gv * iv * (1 - iv), da)
            v.store(dcv * v.load(previousCell) * fv * (1 - fv), da + h)
            v.store(dcv * iv * (1 - gv * gv), da + 2 * h)
            v.store(dcv * fv, dc)
        }
    }
}

/// Asks for the cache lines of `p[0 ..< count]`.
@inline(__always)
func prefetch<T>(_ p: UnsafePointer<T>, count: Int) {
    let bytes = count * MemoryLayout<T>.stride
    for offset in stride(from: 0, to: bytes, by: 64) { cohort_prefetch(UnsafeRawPointer(p) + offset) }
}

/// One GRU step (Cho et al. 2014; PyTorch's formulation, where the reset gate multiplies the
/// whole recurrent term of the candidate):
///
///     r = σ(a_r + b_ir + m_r + b_hr),  z = σ(a_z + b_iz + m_z + b_hz)
///     n = tanh(a_n + b_in + r (m_n + b_hn)),  h_t = (1 - z) n + z h_{t-1}
///
/// with a = W_ih x_t and m = W_hh h_{t-1}. gates: `[N, T, 3H]`, in: a, out: r, z, n.
/// recurrent: `[N, T, 3H]`, in: m, out: its n part replaced by m_n + b_hn. hidden: `[N, T, S]`.
/// biasIH, biasHH: `[3H]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func gruForwardStep<T: Scalar>(
    _ t: Int, gates: UnsafeMutablePointer<T>, recurrent: UnsafeMutablePointer<T>,
    hidden: UnsafeMutablePointer<T>, hiddenStride: Int, biasIH: UnsafePointer<T>, biasHH: UnsafePointer<T>,
    output: UnsafeMutablePointer<T>?, outputStride: Int, batch: Int, steps: Int, hiddenSize h: Int
) {
    let hasNext = t + 1 < steps
    for n in 0..<batch {
        let row = n * steps + t
        let a = gates + row * 3 * h, m = recurrent + row * 3 * h
        let r = a, z = a + h, candidate = a + 2 * h, hn = m + 2 * h
        let previous = hidden + row * hiddenStride, next = previous + hiddenStride
        let out = output.map { $0 + n * outputStride }
        // The sums in vectors (`VectorLanes`: as plain loops over one row's gates, their scalar
        // copies ran); the activations as plain loops in place, which vectorise (one pointer).
        for v in VectorLanes.over(2 * h) { v.store(v.load(a) + v.load(biasIH) + v.load(m) + v.load(biasHH), a) }
        for k in 0..<2 * h { a[k] = sigmoid(a[k]) }
        for v in VectorLanes.over(h) {
            let recurrentN = v.load(hn) + v.load(biasHH + 2 * h)
            v.store(recurrentN, hn)
            v.store(v.load(candidate) + v.load(biasIH + 2 * h) + v.load(r) * recurrentN, candidate)
        }
        for j in 0..<h { candidate[j] = fastTanh(candidate[j]) }
        for v in VectorLanes.over(h) {
            let zv = v.load(z)
            let state = (1 - zv) * v.load(candidate) + zv * v.load(previous)
            if hasNext { v.store(state, next) }
            if let out { v.store(state, out) }
        }
    }
}

/// Backward of `gruForwardStep` at step t, from dh = hiddenGradient + dy_t:
///
///     da_n = dh (1 - z) (1 - n²),  da_z = dh (h_{t-1} - n) z (1 - z)
///     da_r = da_n (m_n + b_hn) r (1 - r),  dm_n = da_n r
///     hiddenGradient = dh z
///
/// inputGradients `[N, T, 3H]`, row (n, t) written with (da_r, da_z, da_n): the gradient of
/// W_ih x_t + b_ih; recurrentGradients likewise with (da_r, da_z, dm_n): that of W_hh h + b_hh.
/// They may be gates and recurrent: each value is read before its place is written. The caller
/// then adds recurrentGradients_t W_hh to hiddenGradient for step t - 1.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func gruBackwardStep<T: Scalar>(
    _ t: Int, gates: UnsafePointer<T>, recurrent: UnsafePointer<T>, hidden: UnsafePointer<T>, hiddenStride: Int,
    inputGradients: UnsafeMutablePointer<T>, recurrentGradients: UnsafeMutablePointer<T>,
    hiddenGradient: UnsafeMutablePointer<T>, outputGradient: UnsafePointer<T>?, outputStride: Int,
    batch: Int, steps: Int, hiddenSize h: Int
) {
    for n in 0..<batch {
        let row = n * steps + t
        let r = gates + row * 3 * h, z = r + h, c = r + 2 * h, hn = recurrent + row * 3 * h + 2 * h
        let da = inputGradients + row * 3 * h, dm = recurrentGradients + row * 3 * h
        let previous = hidden + row * hiddenStride, dh = hiddenGradient + n * h
        if n + 1 < batch {
            prefetch(r + steps * 3 * h, count: 3 * h)
            prefetch(hn + steps * 3 * h, count: h)
            prefetch(previous + steps * hiddenStride, count: h)
        }
        if let outputGradient {
            let dy = outputGradient + n * outputStride
            for j in 0..<h { dh[j] += dy[j] }
        }
        // In vectors (`VectorLanes`): as plain loops over one row's gates, the scalar copies ran.
        for v in VectorLanes.over(h) {
            let dhv = v.load(dh), zv = v.load(z), cv = v.load(c), rv = v.load(r)
            let dn = dhv * (1 - zv) * (1 - cv * cv)
            let dz = dhv * (v.load(previous) - cv) * zv * (1 - zv)
            let dr = dn * v.load(hn) * rv * (1 - rv)
            v.store(dr, da); v.store(dz, da + h); v.store(dn, da + 2 * h)
            v.store(dr, dm); v.store(dz, dm + h); v.store(dn * rv, dm + 2 * h)
            v.store(dhv * zv, dh)
        }
    }
}

/// One step of an Elman (1990) network, as PyTorch's `nn.RNN`: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),
/// act = relu when `relu`, else tanh. states: `[N, T, H]`, in: the pre-activations, out: h_t.
/// hidden: `[N, T, S]`.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func rnnForwardStep<T: Scalar>(
    _ t: Int, states: UnsafeMutablePointer<T>, hidden: UnsafeMutablePointer<T>, hiddenStride: Int,
    relu: Bool, output: UnsafeMutablePointer<T>?, outputStride: Int,
    batch: Int, steps: Int, hiddenSize h: Int
) {
    let hasNext = t + 1 < steps
    for n in 0..<batch {
        let row = n * steps + t
        let a = states + row * h, next = hidden + (row + 1) * hiddenStride
        // One pass per kind of work, each a plain loop over contiguous values that vectorises.
        if relu {
            for j in 0..<h { a[j] = max(a[j], 0) }
        } else {
            for j in 0..<h { a[j] = fastTanh(a[j]) }
        }
        if hasNext { for j in 0..<h { next[j] = a[j] } }
        if let output {
            let out = output + n * outputStride
            for j in 0..<h { out[j] = a[j] }
        }
    }
}

/// Backward of `rnnForwardStep` at step t: da = (hiddenGradient + dy_t) act'(h_t), with
/// tanh' = 1 - h² and relu' = [h > 0], from states `[N, T, H]` (h_t) into stateGradients `[N, T, H]`
/// (which may be states). hiddenGradient is left holding dh; the caller then sets it to da_t W_hh
/// for step t - 1.
@_specialize(where T == Float)
@_specialize(where T == Double)
@inline(never)
func rnnBackwardStep<T: Scalar>(
    _ t: Int, states: UnsafePointer<T>, stateGradients: UnsafeMutablePointer<T>, hiddenGradient: UnsafeMutablePointer<T>,
    relu: Bool, outputGradient: UnsafePointer<T>?, outputStride: Int, batch: Int, steps: Int, hiddenSize h: Int
) {
    for n in 0..<batch {
        let row = n * steps + t
        let state = states + row * h, da = stateGradients + row * h, dh = hiddenGradient + n * h
        if n + 1 < batch { prefetch(state + steps * h, count: h) }
        // Passes with few streams each, so that every one vectorises.
        if let outputGradient {
            let dy = outputGradient + n * outputStride
            for j in 0..<h { dh[j] += dy[j] }
        }
        if relu {
            for j in 0..<h { da[j] = state[j] > 0 ? dh[j] : 0 }
        } else {
            for j in 0..<h { da[j] = dh[j] * (1 - state[j] * state[j]) }
        }
    }
}
