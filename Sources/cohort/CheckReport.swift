import Cohort
import Foundation

/// The debug mode's report as text: the gradient check's table, a table of statistics per step,
/// where a value first became NaN or infinite, and warnings for the flagged layers.
enum CheckReport {
    static func lines(_ report: ModelCheck.Report, coordinates: Int) -> [String] {
        gradientLines(report.gradient, coordinates: coordinates) + [""] + probeLines(report.probe)
    }

    /// The one-line reason the check failed, or nil.
    static func failure(_ report: ModelCheck.Report) -> String? {
        if let culprit = report.gradient.culprit {
            return "gradient check failed: \(describe(culprit, in: report.gradient))"
        }
        return report.probe.nonFinite.map { "not finite: \($0)" }
    }

    private static func describe(_ row: GradientCheck.Row, in report: GradientCheck.Report) -> String {
        let tensor = row.tensor == "input" ? "the gradient it passes down (dx)" : "the gradient of \(row.layer).\(row.tensor)"
        if !row.localPassed {
            return "model.layers[\(row.layer)] (\(row.kind)): its backward disagrees with its forward: \(tensor) is off by \(number(row.localError)) relative"
        }
        // Deep stacks of batch norms over a few samples make the loss chaotic in each weight: central
        // differences then miss a correct gradient (30 dense + batch norm blocks: 4 samples fail, 8
        // pass). Over many samples, a weight's step moves some of the units across their ReLUs'
        // kinks, on both sides at once, unseen (configs/mnist-resnet20.yaml: 16 samples pass, 64 fail
        // at 2.2e-3).
        let kinds = Set(report.rows.map(\.kind))
        let samples = "\(report.samples) sample\(report.samples == 1 ? "" : "s")"
        var hint = ")"
        if !kinds.isDisjoint(with: ["batchnorm", "residual"]) && report.samples < 16 {
            hint = "; or, through batch norms over \(samples), too sensitive for central differences: if --samples 16 passes, it is that)"
        } else if !kinds.isDisjoint(with: ["relu", "maxpool2d", "residual"]) && report.samples > 16 {
            hint = "; or, over \(samples), the differences' step moves units across their ReLUs' kinks: if --samples 16 passes, it is that)"
        }
        return "model.layers[\(row.layer)] (\(row.kind)): \(tensor) of the loss is off by \(number(row.endToEndError)) relative, although every layer's own backward agrees with its forward (the loss or the model's chaining is wrong"
            + hint
    }

    static func gradientLines(_ report: GradientCheck.Report, coordinates: Int) -> [String] {
        let shared = report.endToEndCoordinates.map { " (\($0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)") end to end, shared among many tensors)" }
        var lines = ["gradient check in Double on \(report.samples) training sample\(report.samples == 1 ? "" : "s") (dropout masks of step 1, batch norm in training mode), up to \(coordinates) coordinate\(coordinates == 1 ? "" : "s") per tensor"
                     + (shared ?? "") + "; loss \(String(format: "%.4f", report.loss)):"]
        let header = ["layer", "kind", "tensor", "local error", "end-to-end error", "result"]
        var rows: [[String]] = []
        for row in report.rows {
            let endToEnd = row.tensor == "input" ? "-" : number(row.endToEndError)
            var result = row.passed ? "ok" : "FAIL"
            if row.checked == 0 && row.skipped > 0 && row.passed {
                result = "not checked (all \(row.skipped) at kinks)"
            } else if row.skipped > 0 {
                result += " (\(row.skipped) at kinks skipped)"
            }
            rows.append(["\(row.layer)", row.kind, row.tensor, number(row.localError), endToEnd, result])
        }
        lines += table(header, rows)
        if let culprit = report.culprit {
            lines.append("gradient check FAILED: \(describe(culprit, in: report))")
        } else {
            let local = report.rows.compactMap(\.localError).max() ?? 0
            let endToEnd = report.rows.compactMap(\.endToEndError).max() ?? 0
            let unresolved = report.rows.filter { $0.tensor != "input" && $0.endToEndError == nil }.count
            var line = "gradient check ok: every layer's backward agrees with its forward (largest error \(number(local)) local, \(number(endToEnd)) end to end)"
            if unresolved > 0 {
                line += "; \(unresolved) tensor\(unresolved == 1 ? "'s" : "s'") end-to-end gradient\(unresolved == 1 ? " is" : "s are") too small for the loss to resolve (unresolved)"
            }
            let unchecked = report.rows.filter { $0.checked == 0 && $0.skipped > 0 }.count
            if unchecked > 0 {
                line += "; \(unchecked) tensor\(unchecked == 1 ? " was" : "s were") not checked: every coordinate sampled sat at a kink (tied maxima, a ReLU at 0)"
            }
            lines.append(line)
        }
        return lines
    }

    static func probeLines(_ probe: TrainingProbe.Result) -> [String] {
        var lines: [String] = []
        for statistics in probe.statistics {
            lines.append("step \(statistics.step + 1) (Float, \(statistics.batch) samples): loss " + (statistics.loss.isFinite ? String(format: "%.4f", statistics.loss) : number(statistics.loss)))
            let header = ["layer", "kind", "output", "mean", "std", "dead", "grad mean", "grad std", "flags"]
            let rows = statistics.rows.map { row in
                ["\(row.layer)", row.kind, "[" + row.outputShape.map(String.init).joined(separator: ", ") + "]",
                 number(row.activationMean), number(row.activationStd),
                 row.deadFraction.map { String(format: "%.1f%%", 100 * $0) } ?? "",
                 number(row.gradientMean), number(row.gradientStd), row.flags.map(\.rawValue).joined(separator: ", ")]
            }
            lines += table(header, rows)
            lines.append("")
        }
        if let finding = probe.nonFinite {
            lines.append("NaN or infinity: \(finding)")
        } else {
            lines.append("no NaN or infinity in \(probe.statistics.count) step\(probe.statistics.count == 1 ? "" : "s") (forward, backward, update)")
        }
        lines += warnings(probe.statistics)
        return lines
    }

    /// One line per kind of flag, naming each flagged layer once with the step it first showed.
    private static func warnings(_ steps: [LayerStatistics]) -> [String] {
        let explanations: [(LayerStatistics.Flag, String)] = [
            (.vanishing, "vanishing activations (output std < \(LayerStatistics.vanishingActivationStd))"),
            (.vanishingGradient, "vanishing gradient (std < \(LayerStatistics.vanishingGradientRatio) x the output's)"),
            (.exploding, "exploding gradient (std > \(LayerStatistics.explodingGradientRatio) x the output's)"),
        ]
        var lines: [String] = []
        for (flag, explanation) in explanations {
            var first: [Int: (kind: String, step: Int)] = [:]
            for statistics in steps {
                for row in statistics.rows where row.flags.contains(flag) && first[row.layer] == nil {
                    first[row.layer] = (row.kind, statistics.step)
                }
            }
            guard !first.isEmpty else { continue }
            let layers = first.keys.sorted().map { "[\($0)] \(first[$0]!.kind)" + (first[$0]!.step > 0 ? " (from step \(first[$0]!.step + 1))" : "") }
            lines.append("warning: \(explanation) at model.layers " + layers.joined(separator: ", "))
        }
        return lines
    }

    private static func number(_ value: Double?) -> String {
        guard let value else { return "unresolved" }
        if value == 0 { return "0" }
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return String(format: "%.2e", value)
    }

    /// Left-aligned columns two spaces apart.
    private static func table(_ header: [String], _ rows: [[String]]) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            let cells = row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
            return ("  " + cells.joined(separator: "  ")).replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
    }
}
