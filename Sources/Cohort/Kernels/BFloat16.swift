/// bfloat16: the upper half of a float32 (sign, 8 exponent bits, 7 mantissa bits), so that it keeps
/// float32's range with ~3 significant digits. What `distributed.compress: bf16` sends.

/// `value` rounded to the nearest bfloat16, ties to even (as IEEE rounding and PyTorch's
/// `tensor.bfloat16()`). A NaN stays a (quiet) NaN of the same sign, infinities stay infinite, and
/// a finite value beyond bfloat16's largest (3.39e38) becomes infinite, as rounding says.
@inline(__always)
public func bfloat16Bits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let rounded = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    let quietNaN = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
    return bits & 0x7FFF_FFFF > 0x7F80_0000 ? quietNaN : rounded
}

/// The float32 of a bfloat16's bits (exact).
@inline(__always)
public func float(bfloat16Bits bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// y[i] = bfloat16Bits(x[i]) for `count` values.
public func encodeBFloat16(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count { y[i] = bfloat16Bits(x[i]) }
}

/// y[i] = float(bfloat16Bits: x[i]) for `count` values.
public func decodeBFloat16(_ x: UnsafePointer<UInt16>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { y[i] = float(bfloat16Bits: x[i]) }
}

/// y[i] = bfloat16Bits(sum over p of float(x[p * stride + i])) for i < count, p < parts: the parts'
/// values summed in float32, in part order (so the result does not depend on how MPI delivered them).
public func sumBFloat16Parts(_ x: UnsafePointer<UInt16>, parts: Int, stride: Int, _ y: UnsafeMutablePointer<UInt16>, count: Int,
                             workspace: UnsafeMutablePointer<Float>) {
    decodeBFloat16(x, workspace, count: count)
    for p in 1..<max(parts, 1) {
        let part = x + p * stride
        for i in 0..<count { workspace[i] += float(bfloat16Bits: part[i]) }
    }
    encodeBFloat16(workspace, y, count: count)
}
