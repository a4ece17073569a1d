/// Counter-based random numbers: every value is a pure function of a key and a counter.
///
/// Nothing is carried from one draw to the next, so a dropout mask, a shuffle or an initial weight
/// depends only on what it is for (seed, step, layer, sample index) and never on how many workers
/// share the work or in what order they drew. The mixer is SplitMix64's finaliser (Steele, Lea and
/// Flood, "Fast splittable pseudorandom number generators", 2014), a bijection of 64-bit words.
public struct CounterRandom: Sendable, Equatable {
    public let key: UInt64

    /// A stream keyed by a list of integers, e.g. `(seed, purpose, step, layer, sample)`.
    public init(_ parts: UInt64...) {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for part in parts { h = CounterRandom.mix(h ^ CounterRandom.mix(part &+ 0x632B_E59B_D9B4_E019)) }
        key = h
    }

    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The 64-bit word number `counter` of this stream.
    @inline(__always)
    public func bits(_ counter: UInt64) -> UInt64 {
        CounterRandom.mix(key ^ CounterRandom.mix(counter))
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    @inline(__always)
    public func uniform(_ counter: UInt64) -> Double {
        Double(bits(counter) >> 11) * 0x1p-53
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inline(__always)
    public func uniformFloat(_ counter: UInt64) -> Float {
        Float(bits(counter) >> 40) * 0x1p-24
    }

    /// A standard normal value by the Box-Muller transform of draws `2 * counter` and `2 * counter + 1`.
    public func normal(_ counter: UInt64) -> Double {
        let u1 = 1 - uniform(2 &* counter)
        let u2 = uniform(2 &* counter &+ 1)
        return (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }

    /// A uniform integer in `0..<bound` (Lemire's multiply-shift; the bias is below 2^-32 for our sizes).
    public func below(_ bound: Int, _ counter: UInt64) -> Int {
        Int(bits(counter).multipliedFullWidth(by: UInt64(bound)).high)
    }
}
