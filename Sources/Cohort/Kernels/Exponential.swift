extension Float {
    /// e^v by Cephes' `expf` (Moshier 1984): v = n ln 2 + r with |r| <= ln 2 / 2, e^r by a degree-6
    /// polynomial, 2^n by building the exponent bits. Within 2 ulp of e^v over [-87, 88]; v is
    /// clamped to that range (e^-87 ≈ 1.6e-38, the edge of the normal floats; e^88 ≈ 1.7e38).
    ///
    /// Only arithmetic and bit operations, no branch and no call: a loop over it vectorises (16 lanes
    /// with AVX-512), where a call to the C library's `expf` runs one value at a time. The result is
    /// also the same on every CPU, which the C library's FMA and non-FMA variants are not.
    @inline(__always)
    public static func vectorizableExp(_ v: Float) -> Float {
        let x = Swift.min(Swift.max(v, -87), 88)
        // Adding 1.5 * 2^23 rounds x log2(e) to an integer n, left in the sum's low mantissa bits.
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        // ln 2 in two parts, the first exact in few bits, so that n * 0.693359375 has no rounding error.
        let r = x - n * 0.693_359_375 + n * 2.121_944_40e-4
        var p: Float = 1.987_569_150_0e-4
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * r * r + r + 1
        let twoToTheN = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
        return p * twoToTheN
    }
}
