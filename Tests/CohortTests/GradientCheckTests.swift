import XCTest
@testable import Cohort

/// Every layer's backward against central differences of its forward, in Double: the loss is
/// L = sum(y * w) for a fixed random w, so dL/dy = w, and each input and parameter is moved by ±h.
final class GradientCheckTests: XCTestCase {
    let h = 1e-6
    let tolerance = 1e-6

    /// Checks dx and every parameter gradient of `layer` on a batch of `batch` random inputs.
    func checkGradients(_ layer: any Layer<Double>, batch: Int, training: Bool = true, seed: UInt64 = 1,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let total = layer.parameterShapes.reduce(0) { $0 + $1.count }
        let parameters = Buffer<Double>(count: total)
        let gradients = Buffer<Double>(count: total)
        layer.bind(parameters: parameters.pointer, gradients: gradients.pointer)
        layer.initialize(seed: seed, layerIndex: 0)
        let random = CounterRandom(seed, 7)
        // Parameters away from their defaults (batch norm starts at gamma 1, beta 0).
        for i in 0..<total { parameters.pointer[i] += 0.3 * random.normal(UInt64(i)) }
        layer.reserve(maxBatch: batch)
        let inputCount = batch * layer.inputSize, outputCount = batch * layer.outputSize
        let x = Buffer<Double>(count: inputCount), y = Buffer<Double>(count: outputCount)
        let w = Buffer<Double>(count: outputCount), dx = Buffer<Double>(count: inputCount)
        for i in 0..<inputCount { x.pointer[i] = random.normal(UInt64(10_000 + i)) }
        for i in 0..<outputCount { w.pointer[i] = random.normal(UInt64(90_000 + i)) }
        let context = StepContext(isTraining: training, seed: seed, step: 3, firstSampleIndex: 5, globalBatch: batch,
                                  communicator: SoloCommunicator())
        func loss() throws -> Double {
            try layer.forward(x.pointer, y.pointer, batch: batch, context: context)
            var sum = 0.0
            for i in 0..<outputCount { sum += y.pointer[i] * w.pointer[i] }
            return sum
        }
        _ = try loss()
        // Backward adds to the gradients (the `Layer` contract): start them away from zero.
        let start = (0..<total).map { random.normal(UInt64(200_000 + $0)) }
        for i in 0..<total { gradients.pointer[i] = start[i] }
        try layer.backward(x.pointer, y.pointer, w.pointer, dx.pointer, batch: batch, context: context)

        func numeric(_ value: UnsafeMutablePointer<Double>) throws -> Double {
            let saved = value.pointee
            value.pointee = saved + h
            let plus = try loss()
            value.pointee = saved - h
            let minus = try loss()
            value.pointee = saved
            return (plus - minus) / (2 * h)
        }
        var analytic: [Double] = [], estimated: [Double] = []
        for i in 0..<inputCount {
            analytic.append(dx.pointer[i])
            estimated.append(try numeric(x.pointer + i))
        }
        let inputError = relativeError(analytic, estimated)
        XCTAssertLessThan(inputError, tolerance, "\(layer.kind): dx relative error \(inputError)", file: file, line: line)
        var offset = 0
        for shape in layer.parameterShapes {
            analytic = []; estimated = []
            for i in offset..<(offset + shape.count) {
                analytic.append(gradients.pointer[i] - start[i])
                estimated.append(try numeric(parameters.pointer + i))
            }
            let error = relativeError(analytic, estimated)
            XCTAssertLessThan(error, tolerance, "\(layer.kind).\(shape.name): relative error \(error)", file: file, line: line)
            XCTAssertGreaterThan(estimated.map(abs).max() ?? 0, 1e-6, "\(layer.kind).\(shape.name): gradient vanishes, check is empty", file: file, line: line)
            offset += shape.count
        }
    }

    func testConv2DGradients() throws {
        try checkGradients(Conv2D<Double>(input: [2, 5, 5], outChannels: 3, kernel: 3, stride: 1, padding: 1, bias: true,
                                          initializer: LayerInit(), index: 0), batch: 2)
    }

    func testStridedConv2DWithoutBiasGradients() throws {
        try checkGradients(Conv2D<Double>(input: [3, 6, 7], outChannels: 2, kernel: 3, stride: 2, padding: 0, bias: false,
                                          initializer: LayerInit(), index: 0), batch: 2)
    }

    func testDenseGradients() throws {
        try checkGradients(Dense<Double>(input: [7], outFeatures: 4, bias: true, initializer: LayerInit(), index: 0), batch: 3)
    }

    func testBatchNorm1dTrainingGradients() throws {
        try checkGradients(BatchNorm<Double>(input: [5], momentum: 0.1, epsilon: 1e-5, synchronized: true, index: 0), batch: 4)
    }

    func testBatchNorm2dTrainingGradients() throws {
        try checkGradients(BatchNorm<Double>(input: [3, 4, 4], momentum: 0.1, epsilon: 1e-5, synchronized: true, index: 0), batch: 2)
    }

    func testBatchNormInferenceGradients() throws {
        try checkGradients(BatchNorm<Double>(input: [3, 2, 2], momentum: 0.1, epsilon: 1e-5, synchronized: true, index: 0),
                           batch: 2, training: false)
    }

    func testDropoutGradients() throws {
        try checkGradients(Dropout<Double>(input: [6, 3], probability: 0.4), batch: 3)
    }

    func testActivationGradients() throws {
        for function in Activation<Double>.Function.allCases {
            try checkGradients(Activation<Double>(function, input: [4, 3]), batch: 2)
        }
    }

    func testMaxPoolGradients() throws {
        try checkGradients(Pool2D<Double>(.max, input: [2, 6, 6], kernel: 2, stride: 2, padding: 0, index: 0), batch: 2)
        // Windows that tile the image, with a last row and column outside every window.
        try checkGradients(Pool2D<Double>(.max, input: [2, 7, 5], kernel: 2, stride: 2, padding: 0, index: 0), batch: 2)
        try checkGradients(Pool2D<Double>(.max, input: [1, 7, 8], kernel: 3, stride: 3, padding: 0, index: 0), batch: 2)
        try checkGradients(Pool2D<Double>(.max, input: [2, 5, 5], kernel: 3, stride: 2, padding: 1, index: 0), batch: 2)
    }

    func testAvgPoolGradients() throws {
        try checkGradients(Pool2D<Double>(.average, input: [2, 6, 6], kernel: 2, stride: 2, padding: 0, index: 0), batch: 2)
        try checkGradients(Pool2D<Double>(.average, input: [1, 5, 5], kernel: 3, stride: 1, padding: 1, index: 0), batch: 2)
    }

    func testFlattenGradients() throws {
        try checkGradients(Flatten<Double>(input: [2, 3, 2]), batch: 2)
    }

    /// The softmax cross-entropy's gradient, scaled by 1 / batch, against central differences of the mean loss.
    func testSoftmaxCrossEntropyGradient() {
        let batch = 3, classes = 5
        var logits = (0..<(batch * classes)).map { Double($0 % 7) * 0.9 - 2 }
        let labels: [Int32] = [0, 4, 2]
        var gradient = [Double](repeating: 0, count: logits.count)
        func meanLoss(_ values: [Double]) -> Double {
            softmaxCrossEntropy(logits: values, labels: labels, dlogits: nil, batch: batch, classes: classes, gradientScale: 0).lossSum / Double(batch)
        }
        _ = softmaxCrossEntropy(logits: logits, labels: labels, dlogits: &gradient, batch: batch, classes: classes, gradientScale: 1 / Double(batch))
        var estimated: [Double] = []
        for i in logits.indices {
            let saved = logits[i]
            logits[i] = saved + h; let plus = meanLoss(logits)
            logits[i] = saved - h; let minus = meanLoss(logits)
            logits[i] = saved
            estimated.append((plus - minus) / (2 * h))
        }
        XCTAssertLessThan(relativeError(gradient, estimated), tolerance)
    }

    /// Huge logits neither overflow nor lose the answer.
    func testSoftmaxCrossEntropyIsStableForLargeLogits() {
        let logits: [Float] = [1000, 0, -1000, 50, 51, 52]
        let labels: [Int32] = [0, 1]
        let result = softmaxCrossEntropy(logits: logits, labels: labels, dlogits: nil, batch: 2, classes: 3, gradientScale: 0)
        XCTAssertTrue(result.lossSum.isFinite)
        XCTAssertEqual(result.lossSum, 0 + (52 - 51 + log(1 + exp(-1) + exp(-2))), accuracy: 1e-4)
        XCTAssertEqual(result.correct, 1)
    }

    /// A whole model (conv, batch norm, pooling, dense, dropout) and its loss, parameter by parameter.
    func testWholeModelGradientsThroughTheLoss() throws {
        try checkModelGradients(input: [1, 6, 6], layers: """
                - conv2d: {out_channels: 2, kernel_size: 3, padding: 1}
                - batchnorm: {}
                - tanh: {}
                - maxpool2d: {kernel_size: 2}
                - flatten: {}
                - dense: {out_features: 5}
                - dropout: {p: 0.3}
                - dense: {out_features: 3}
            """, labels: [0, 2, 1, 2])
    }

    /// A ReLU right after a batch norm runs inside it (`BatchNorm.appliesReLU`), after conv and dense.
    func testBatchNormFollowedByReLUGradients() throws {
        try checkModelGradients(input: [2, 5, 5], layers: """
                - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}
                - batchnorm: {}
                - relu: {}
                - flatten: {}
                - dense: {out_features: 6}
                - batchnorm: {}
                - relu: {}
                - dense: {out_features: 3}
            """, labels: [1, 0, 2, 2])
    }

    /// Every parameter gradient of the model of `layers` (YAML list items), through the mean
    /// softmax cross-entropy of a batch of random inputs with `labels`.
    func checkModelGradients(input: [Int], layers: String, labels: [Int32], file: StaticString = #filePath, line: UInt = #line) throws {
        let batch = labels.count
        let model = try modelOnRandomInput(input: input, layers: layers, batch: batch, seed: 3, inputSeed: 11)
        let context = StepContext(isTraining: true, seed: 3, step: 0, firstSampleIndex: 0, globalBatch: batch, communicator: SoloCommunicator())
        func loss(withGradient: Bool) throws -> Double {
            try model.forward(batch: batch, context: context)
            return labels.withUnsafeBufferPointer { l in
                softmaxCrossEntropy(logits: model.output, labels: l.baseAddress!, dlogits: withGradient ? model.outputGradient : nil,
                                    batch: batch, classes: model.classes, gradientScale: 1 / Double(batch)).lossSum / Double(batch)
            }
        }
        _ = try loss(withGradient: true)
        try model.backward(batch: batch, context: context)
        let analytic = Array(model.gradients.buffer)
        var estimated: [Double] = []
        for i in 0..<model.parameters.count {
            let saved = model.parameters.pointer[i]
            model.parameters.pointer[i] = saved + h; let plus = try loss(withGradient: false)
            model.parameters.pointer[i] = saved - h; let minus = try loss(withGradient: false)
            model.parameters.pointer[i] = saved
            estimated.append((plus - minus) / (2 * h))
        }
        XCTAssertLessThan(relativeError(analytic, estimated), tolerance, file: file, line: line)
    }

    /// A failing comparison is made again at a tenth and a hundredth of the step: an error that
    /// shrinks with the step (kinks crossed within it) passes, one that does not (a wrong gradient)
    /// or that only rounding moves still fails, and an unresolved retry changes nothing.
    func testAFailingComparisonIsRetriedAtSmallerStepsAndKeepsTheLeastError() {
        var steps: [Double] = []
        let kinks = GradientCheck.leastError(step: 1e-6, tolerance: 1e-3) { h in
            steps.append(h)
            return (2e3 * h, 30, 0)
        }
        XCTAssertEqual(steps, [1e-6, 1e-7])
        XCTAssertEqual(try XCTUnwrap(kinks.error), 2e-4, accuracy: 1e-12)
        steps = []
        let wrong = GradientCheck.leastError(step: 1e-6, tolerance: 1e-3) { h in
            steps.append(h)
            return (5e-2 + 1e-12 / h, 30, 0)
        }
        XCTAssertEqual(steps, [1e-6, 1e-7, 1e-8])
        XCTAssertEqual(try XCTUnwrap(wrong.error), 5e-2 + 1e-6, accuracy: 1e-12)
        let unresolved = GradientCheck.leastError(step: 1e-6, tolerance: 1e-3) { h in (h == 1e-6 ? 3e-3 : nil, 30, 0) }
        XCTAssertEqual(unresolved.error, 3e-3)
        steps = []
        let passing = GradientCheck.leastError(step: 1e-5, tolerance: 1e-4) { h in
            steps.append(h)
            return (1e-6, 30, 2)
        }
        XCTAssertEqual(steps, [1e-5])
        XCTAssertEqual(passing.skipped, 2)
    }
}

/// im2col and col2im against the definition, element by element, over many geometries (rows of 8
/// outputs and more reach the stride-2 vector paths).
final class Im2colTests: XCTestCase {
    func testIm2colAndCol2imMatchTheDefinition() {
        for kernel in 1...5 { for stride in 1...3 { for padding in 0...2 { for (h, w) in [(5, 7), (6, 6), (3, 4), (1, 2), (2, 1), (3, 17), (2, 33), (3, 40)] {
            let g = WindowGeometry(channels: 2, height: h, width: w, kernel: kernel, stride: stride, padding: padding)
            guard g.outHeight > 0, g.outWidth > 0 else { continue }
            let x = (0..<g.inputSize).map { Float($0 % 13) - 6 }
            var cols = [Float](repeating: .nan, count: g.patchSize * g.outHeight * g.outWidth)
            im2col(x, &cols, g)
            var expected = [Float](repeating: 0, count: cols.count)
            // A gradient of the columns has values in the padding too: col2im must drop them.
            var gradient = (0..<cols.count).map { Float($0 % 11) - 5 }
            var folded = [Float](repeating: 0, count: g.inputSize)
            for c in 0..<2 { for ki in 0..<kernel { for kj in 0..<kernel { for oy in 0..<g.outHeight { for ox in 0..<g.outWidth {
                let row = (c * kernel + ki) * kernel + kj
                let iy = oy * stride - padding + ki, ix = ox * stride - padding + kj
                let inside = iy >= 0 && iy < h && ix >= 0 && ix < w
                let index = row * g.outHeight * g.outWidth + oy * g.outWidth + ox
                expected[index] = inside ? x[(c * h + iy) * w + ix] : 0
                if inside { folded[(c * h + iy) * w + ix] += gradient[index] }
            } } } } }
            XCTAssertEqual(cols, expected, "im2col \(g)")
            var back = [Float](repeating: .nan, count: g.inputSize)
            col2im(&gradient, &back, g)
            XCTAssertEqual(back, folded, "col2im \(g)")
        } } } }
    }
}

/// Max pooling's choice among equal values is PyTorch's: the first in row-major order.
final class MaxPoolTieTests: XCTestCase {
    func testTiesGoToTheFirstPositionInRowMajorOrder() {
        let g = WindowGeometry(channels: 1, height: 2, width: 8, kernel: 2, stride: 2, padding: 0)
        // Windows (columns 2i, 2i+1): [1 5 / 5 1], [5 5 / 5 5], [0 0 / 0 3], [2 1 / 2 1]
        let x: [Float] = [1, 5, 5, 5, 0, 0, 2, 1,
                          5, 1, 5, 5, 0, 3, 2, 1]
        var y = [Float](repeating: 0, count: 4)
        var argmax = [Int32](repeating: -1, count: 4)
        maxPoolForward(x, &y, &argmax, batch: 1, g)
        XCTAssertEqual(y, [5, 5, 3, 2])
        XCTAssertEqual(argmax, [1, 2, 13, 6])
    }

    /// Rows of 20 outputs of values from {0, 1, 2}, so that
    /// most windows hold ties, against a scan of each window in row-major order (the first of the
    /// largest wins).
    func testVectorsOfWindowsChooseAsTheRowMajorScan() {
        assertMatchesRowMajorScan(WindowGeometry(channels: 3, height: 6, width: 40, kernel: 2, stride: 2, padding: 0), batch: 2)
    }

    /// An odd width and height (41 x 27: 20 x 13 windows, the last column and row in none), so that
    /// rows of windows do not start where rows of the image do, and planes of more windows than
    /// one pass takes at once (runs of 6 rows of 20 in Float, 3 in Double).
    func testOddSizesChooseAsTheRowMajorScan() {
        assertMatchesRowMajorScan(WindowGeometry(channels: 2, height: 27, width: 41, kernel: 2, stride: 2, padding: 0), batch: 3)
    }

    private func assertMatchesRowMajorScan(_ g: WindowGeometry, batch: Int, file: StaticString = #filePath, line: UInt = #line) {
        assertMatchesRowMajorScan(Float.self, g, batch: batch, file: file, line: line)
        assertMatchesRowMajorScan(Double.self, g, batch: batch, file: file, line: line)
    }

    private func assertMatchesRowMajorScan<T: Scalar>(_ type: T.Type, _ g: WindowGeometry, batch: Int, file: StaticString, line: UInt) {
        let x: [T] = (0..<(batch * g.inputSize)).map { i in T((i * 7 + i / 13) % 3) }
        let outputs = batch * g.channels * g.outHeight * g.outWidth
        var y = [T](repeating: .nan, count: outputs)
        var argmax = [Int32](repeating: -1, count: outputs)
        maxPoolForward(x, &y, &argmax, batch: batch, g)
        for plane in 0..<(batch * g.channels) { for oy in 0..<g.outHeight { for ox in 0..<g.outWidth {
            var best = -T.infinity, at = -1
            for ki in 0..<2 { for kj in 0..<2 {
                let index = (2 * oy + ki) * g.width + 2 * ox + kj
                if at < 0 || x[plane * g.width * g.height + index] > best { best = x[plane * g.width * g.height + index]; at = index }
            } }
            let o = (plane * g.outHeight + oy) * g.outWidth + ox
            XCTAssertEqual(argmax[o], Int32(at), "\(T.self) plane \(plane) (\(oy), \(ox))", file: file, line: line)
            XCTAssertEqual(y[o], best, "\(T.self) plane \(plane) (\(oy), \(ox))", file: file, line: line)
        } } }
    }
}
