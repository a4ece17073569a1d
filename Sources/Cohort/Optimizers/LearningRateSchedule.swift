import RealModule

/// The learning rate of each step: constant, `step` (times `gamma` every `step_size` steps, as
/// `StepLR`) or `cosine` (from the base rate to 0 over the run, as `CosineAnnealingLR` with
/// `T_max` = total steps), after an optional linear warm-up over `warmup_steps`.
public struct LearningRateSchedule: Sendable {
    public let base: Double
    public let config: ScheduleConfig
    public let totalSteps: Int

    public init(base: Double, config: ScheduleConfig, totalSteps: Int) {
        self.base = base; self.config = config; self.totalSteps = totalSteps
    }

    /// The rate for step `step` (counted from 0).
    public func rate(at step: Int) -> Double {
        let warmup = config.warmupSteps
        if step < warmup { return base * Double(step + 1) / Double(warmup) }
        let t = step - warmup
        switch config.kind {
        case .constant:
            return base
        case .step:
            return base * Double.pow(config.gamma, Double(t / config.stepSize))
        case .cosine:
            let span = max(totalSteps - warmup, 1)
            return base * (1 + Double.cos(Double.pi * Double(min(t, span)) / Double(span))) / 2
        }
    }
}
