import Foundation

/// The training curves of a run as one self-contained SVG: loss and accuracy against the step, side
/// by side, training (a line through every logged window) and test (a line with a marker per
/// evaluation), with ticked axes, labels and a legend. No script, style sheet or font to fetch: any
/// browser or image viewer shows it.
///
/// Each curve is a `polyline` with one vertex per point, identified as `train-loss`, `test-loss`,
/// `train-accuracy` and `test-accuracy`.
public enum CurvesSVG {
    static let width = 960.0, height = 420.0
    static let trainColor = "#1f77b4", testColor = "#e4572e"

    /// The SVG text of `points`, titled `title`.
    public static func render(_ points: [MetricPoint], title: String) -> String {
        let train = points.filter { $0.split == .train }
        let test = points.filter { $0.split == .test }
        let lastStep = max(1, points.map(\.step).max() ?? 1)
        var svg = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif">
            <title>\(escape(title))</title>
            <rect width="100%" height="100%" fill="#ffffff"/>
            <text x="24" y="30" font-size="16" font-weight="bold" fill="#222222">\(escape(title))</text>
            <text x="24" y="50" font-size="12" fill="#555555">\(escape(subtitle(train: train, test: test)))</text>

            """
        svg += legend(x: width - 250, y: 25)
        let panelWidth = width / 2
        let losses = points.map(\.loss)
        svg += panel(name: "loss", x: 0, width: panelWidth, steps: lastStep,
                     values: Axis.nice(low: 0, high: losses.max() ?? 1),
                     train: train.map { ($0.step, $0.loss) }, test: test.map { ($0.step, $0.loss) })
        let accuracies = points.map(\.accuracy)
        svg += panel(name: "accuracy", x: panelWidth, width: panelWidth, steps: lastStep,
                     values: Axis.nice(low: accuracies.min() ?? 0, high: accuracies.max() ?? 1, within: 0...1),
                     train: train.map { ($0.step, $0.accuracy) }, test: test.map { ($0.step, $0.accuracy) })
        svg += """
            <text x="24" y="\(Int(height) - 10)" font-size="11" fill="#777777">train: mean over each logged window of steps (dropout on); test: the test set in inference mode</text>
            </svg>

            """
        return svg
    }

    /// The figures a reader looks for first: steps, final and best test accuracy.
    private static func subtitle(train: [MetricPoint], test: [MetricPoint]) -> String {
        var text = "\(train.last?.step ?? 0) steps"
        if let last = train.last { text += String(format: ", final train loss %.4f", last.loss) }
        if let final = test.last, let best = test.max(by: { $0.accuracy < $1.accuracy }) {
            text += String(format: ", test accuracy %.4f (best %.4f at epoch %d)", final.accuracy, best.accuracy, best.epoch)
        }
        return text
    }

    /// A round axis range and its ticks.
    struct Axis {
        var low: Double
        var high: Double
        var step: Double

        /// About five ticks at 1, 2 or 5 times a power of ten, covering `low...high`, clamped to `within`.
        static func nice(low: Double, high: Double, within: ClosedRange<Double> = -.infinity ... .infinity) -> Axis {
            var low = low, high = high
            if !(high > low) {
                let pad = max(abs(high) * 0.1, 0.05)
                low -= pad
                high += pad
            }
            let rough = (high - low) / 5
            let magnitude = pow(10, (log10(rough)).rounded(.down))
            let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
            let niceLow = max(within.lowerBound, (low / step).rounded(.down) * step)
            let niceHigh = min(within.upperBound, (high / step).rounded(.up) * step)
            return Axis(low: niceLow, high: max(niceHigh, niceLow + step), step: step)
        }

        var ticks: [Double] {
            let count = Int(((high - low) / step + 1e-9).rounded(.down))
            return (0...count).map { low + Double($0) * step }
        }

        /// The tick labels' decimals: enough to tell ticks apart, no more.
        var decimals: Int { max(0, -Int(log10(step).rounded(.down))) }
    }

    private static func panel(name: String, x: Double, width: Double, steps: Int, values: Axis,
                              train: [(Int, Double)], test: [(Int, Double)]) -> String {
        let left = x + 70, right = x + width - 24, top = 76.0, bottom = height - 80
        let stepAxis = Axis.nice(low: 0, high: Double(steps))
        func px(_ step: Double) -> Double { left + (step - stepAxis.low) / (stepAxis.high - stepAxis.low) * (right - left) }
        func py(_ value: Double) -> Double { bottom - (value - values.low) / (values.high - values.low) * (bottom - top) }
        var svg = "<g id=\"\(name)-panel\">\n"
        for tick in values.ticks {
            let y = format(py(tick))
            svg += "<line x1=\"\(format(left))\" y1=\"\(y)\" x2=\"\(format(right))\" y2=\"\(y)\" stroke=\"#e6e6e6\"/>\n"
            svg += "<text x=\"\(format(left - 8))\" y=\"\(y)\" dy=\"4\" font-size=\"11\" text-anchor=\"end\" fill=\"#444444\">\(String(format: "%.*f", values.decimals, tick))</text>\n"
        }
        for tick in stepAxis.ticks {
            let tx = format(px(tick))
            svg += "<line x1=\"\(tx)\" y1=\"\(format(bottom))\" x2=\"\(tx)\" y2=\"\(format(bottom + 5))\" stroke=\"#444444\"/>\n"
            svg += "<text x=\"\(tx)\" y=\"\(format(bottom + 19))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#444444\">\(String(format: "%.*f", stepAxis.decimals, tick))</text>\n"
        }
        svg += "<polyline points=\"\(format(left)),\(format(top)) \(format(left)),\(format(bottom)) \(format(right)),\(format(bottom))\" fill=\"none\" stroke=\"#444444\"/>\n"
        svg += "<text x=\"\(format((left + right) / 2))\" y=\"\(format(bottom + 42))\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222222\">step</text>\n"
        let middle = format((top + bottom) / 2)
        svg += "<text x=\"\(format(x + 20))\" y=\"\(middle)\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222222\" transform=\"rotate(-90 \(format(x + 20)) \(middle))\">\(name)</text>\n"
        func curve(_ id: String, _ points: [(Int, Double)], color: String, markers: Bool) -> String {
            let vertices = points.map { "\(format(px(Double($0.0)))),\(format(py($0.1)))" }.joined(separator: " ")
            var text = "<polyline id=\"\(id)\" points=\"\(vertices)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n"
            if markers || points.count == 1 {
                for (step, value) in points {
                    text += "<circle cx=\"\(format(px(Double(step))))\" cy=\"\(format(py(value)))\" r=\"3.5\" fill=\"\(color)\"/>\n"
                }
            }
            return text
        }
        svg += curve("train-\(name)", train, color: trainColor, markers: false)
        svg += curve("test-\(name)", test, color: testColor, markers: true)
        return svg + "</g>\n"
    }

    private static func legend(x: Double, y: Double) -> String {
        """
        <g id="legend" font-size="13" fill="#222222">
        <line x1="\(format(x))" y1="\(format(y))" x2="\(format(x + 24))" y2="\(format(y))" stroke="\(trainColor)" stroke-width="2"/>
        <text x="\(format(x + 30))" y="\(format(y + 4))">train</text>
        <line x1="\(format(x + 100))" y1="\(format(y))" x2="\(format(x + 124))" y2="\(format(y))" stroke="\(testColor)" stroke-width="2"/>
        <circle cx="\(format(x + 112))" cy="\(format(y))" r="3.5" fill="\(testColor)"/>
        <text x="\(format(x + 130))" y="\(format(y + 4))">test</text>
        </g>

        """
    }

    private static func format(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
