/// Whether all `count` values are finite: one vectorised pass summing them, since a NaN or an
/// infinity makes the sum non-finite (a finite sum overflowing needs values near Float's limit,
/// themselves a sign of divergence).
public func allFinite(_ values: UnsafePointer<Float>, count: Int) -> Bool {
    sum(values, count: count).isFinite
}
