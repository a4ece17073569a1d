import Cohort
import Foundation

/// A confusion matrix as text: one row per true label, one column per predicted label, then the
/// row's sample count and accuracy (the diagonal over the row).
enum ConfusionTable {
    static func lines(_ matrix: ConfusionMatrix) -> [String] {
        let classes = matrix.classes
        let width = max(String(matrix.counts.max() ?? 0).count, String(max(classes - 1, 0)).count, 3)
        func cell(_ text: String) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        let corner = "true\\pred"
        var lines = ["confusion matrix (rows: true label, columns: predicted label) and per-class accuracy:"]
        lines.append("  " + corner + " " + (0..<classes).map { cell("\($0)") }.joined(separator: " ") + "  samples  accuracy")
        for truth in 0..<classes {
            let label = String(repeating: " ", count: corner.count - String(truth).count) + "\(truth)"
            let row = (0..<classes).map { cell("\(matrix[truth, $0])") }.joined(separator: " ")
            let samples = String(matrix.total(of: truth))
            let accuracy = matrix.accuracy(of: truth).map { String(format: "%.4f", $0) } ?? "-"
            lines.append("  \(label) \(row)  " + String(repeating: " ", count: max(0, 7 - samples.count)) + samples
                         + "  " + String(repeating: " ", count: max(0, 8 - accuracy.count)) + accuracy)
        }
        return lines
    }
}
