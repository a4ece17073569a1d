/// Whether all `count` values are finite: one vectorised pass summing them, since a NaN or an
/// infinity makes the sum non-finite (a finite sum overflowing needs values near Float's limit,
/// themselves a sign of divergence).
/// Shared among a `ThreadTeam`'s threads.
public func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
    allShares(of: count) { range in sum(values + range.lowerBound, count: range.count).isFinite }
}
