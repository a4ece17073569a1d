/// Whether all `count` values are finite: one vectorised pass summing them, since a NaN or an
/// infinity makes the sum non-finite (a finite sum overflowing needs values near Float's limit,
/// themselves a sign of divergence).
/// Shared among a `ThreadTeam`'s threads.
public func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
    allShares(of: count) { range in sum(values + range.lowerBound, count: range.count).isFinite }
}

/// Whether all `count` values are finite, exactly (no overflow to mistake for an infinity): x * 0
/// is NaN where x is a NaN or an infinity and ±0 elsewhere, so one vectorised pass sums them to 0
/// unless one is not finite. For values that may be huge and finite (a user's data).
func allFiniteExactly<T: Scalar>(_ values: UnsafePointer<T>, count: Int) -> Bool {
    var probe = T(0)
    for i in 0..<count { probe += values[i] * 0 }
    return probe == 0
}
