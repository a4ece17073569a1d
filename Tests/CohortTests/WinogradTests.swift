import Foundation
import XCTest
@testable import Cohort

/// Winograd F(2x2, 3x3) convolutions against central differences.
extension GradientCheckTests {
    func winogradConv(_ type: Double.Type, input: [Int], out: Int, padding: Int, bias: Bool,
                      _ algorithm: ConvolutionAlgorithm) throws -> Conv2D<Double> {
        try Conv2D<Double>(input: input, outChannels: out, kernel: 3, stride: 1, padding: padding, bias: bias,
                           initializer: LayerInit(), index: 0, algorithm: algorithm)
    }

    func testWinogradConv2DWithPartialTilesAtTheBorders() throws {
        // 5x5 with padding 1: 3x3 tiles of which the last row and column cover one output only.
        let conv = try winogradConv(Double.self, input: [2, 5, 5], out: 3, padding: 1, bias: true, .winograd)
        XCTAssertEqual(conv.algorithm, .winograd)
        try checkGradients(conv, batch: 2)
    }

    func testWinogradConv2DWithoutPaddingOnOddWidth() throws {
        try checkGradients(try winogradConv(Double.self, input: [3, 6, 7], out: 2, padding: 0, bias: false, .winograd), batch: 2)
    }

    func testWinogradConv2DWithPaddingTwoAcrossSeveralChunks() throws {
        let conv = try winogradConv(Double.self, input: [2, 4, 6], out: 3, padding: 2, bias: true, .winograd)
        conv.chunkElements = 1  // one image per chunk: three chunks
        try checkGradients(conv, batch: 3)
    }
}

/// Winograd F(2x2, 3x3) convolutions: outputs and gradients against im2col on the same weights, and
/// PyTorch's fixtures trained through it.
final class WinogradTests: XCTestCase {
    func makeConv<T: Scalar>(_ type: T.Type, input: [Int], out: Int, padding: Int, bias: Bool,
                             _ algorithm: ConvolutionAlgorithm) throws -> Conv2D<T> {
        try Conv2D<T>(input: input, outChannels: out, kernel: 3, stride: 1, padding: padding, bias: bias,
                      initializer: LayerInit(), index: 0, algorithm: algorithm)
    }

    /// Runs the same layer both ways on the same weights and data; returns the largest relative error of y, dx, dW, db.
    func compareWithIm2col<T: Scalar>(_ type: T.Type, input: [Int], out: Int, padding: Int, batch: Int,
                                       chunkElements: Int? = nil) throws -> Double {
        let winograd = try makeConv(T.self, input: input, out: out, padding: padding, bias: true, .winograd)
        let reference = try makeConv(T.self, input: input, out: out, padding: padding, bias: true, .im2col)
        if let chunkElements { winograd.chunkElements = chunkElements }
        let count = winograd.parameterShapes.reduce(0) { $0 + $1.count }
        let parameters = Buffer<T>(count: count)
        let random = CounterRandom(11, 3)
        for i in 0..<count { parameters.pointer[i] = T(random.normal(UInt64(i))) }
        let x = Buffer<T>(count: batch * winograd.inputSize), dy = Buffer<T>(count: batch * winograd.outputSize)
        for i in 0..<x.count { x.pointer[i] = T(random.normal(UInt64(100_000 + i))) }
        for i in 0..<dy.count { dy.pointer[i] = T(random.normal(UInt64(900_000 + i))) }
        let context = StepContext(isTraining: true, seed: 1, step: 0, firstSampleIndex: 0, globalBatch: batch,
                                  communicator: SoloCommunicator())
        var results: [[[Double]]] = []
        for conv in [winograd, reference] {
            let gradients = Buffer<T>(count: count)
            conv.bind(parameters: parameters.pointer, gradients: gradients.pointer)
            conv.reserve(maxBatch: batch)
            let y = Buffer<T>(count: dy.count), dx = Buffer<T>(count: x.count)
            dx.pointer.update(repeating: T(7), count: x.count)  // overwritten, not accumulated into
            try conv.forward(x.pointer, y.pointer, batch: batch, context: context)
            try conv.backward(x.pointer, y.pointer, dy.pointer, dx.pointer, batch: batch, context: context)
            results.append([y, dx, gradients].map { buffer in buffer.buffer.map { Double($0) } })
        }
        return zip(results[0], results[1]).map { relativeError($0, $1) }.max()!
    }

    func testMatchesIm2colInDouble() throws {
        XCTAssertLessThan(try compareWithIm2col(Double.self, input: [5, 9, 11], out: 4, padding: 1, batch: 3), 1e-13)
        XCTAssertLessThan(try compareWithIm2col(Double.self, input: [3, 8, 8], out: 5, padding: 0, batch: 2, chunkElements: 1), 1e-13)
        // Rows of 11 and of 16 tiles: a whole vector of 8 and a part of one, and two whole ones.
        XCTAssertLessThan(try compareWithIm2col(Double.self, input: [2, 6, 21], out: 3, padding: 1, batch: 2), 1e-13)
        XCTAssertLessThan(try compareWithIm2col(Double.self, input: [4, 32, 32], out: 2, padding: 1, batch: 2, chunkElements: 1), 1e-13)
    }

    /// Rows of 4 tiles, two to a vector (`WinogradTiling.pairsRows`): 8 x 8 and 7 x 7 maps, an odd
    /// number of rows of tiles (5 x 8: the last paired with itself), several images per chunk and
    /// one, in Double against im2col and in Float on ResNet-20's last stage.
    func testRowsOfFourTilesPairedMatchIm2col() throws {
        for (input, batch, chunk) in [([3, 8, 8], 3, nil), ([2, 7, 7], 2, 1), ([3, 5, 8], 3, nil), ([2, 5, 8], 2, 1)] as [([Int], Int, Int?)] {
            XCTAssertTrue(WinogradTiling(WindowGeometry(channels: input[0], height: input[1], width: input[2], kernel: 3, stride: 1, padding: 1),
                                         outChannels: 3).pairsRows)
            XCTAssertLessThan(try compareWithIm2col(Double.self, input: input, out: 3, padding: 1, batch: batch, chunkElements: chunk),
                              1e-13, "\(input)")
        }
        XCTAssertLessThan(try compareWithIm2col(Float.self, input: [64, 8, 8], out: 64, padding: 1, batch: 4), 1e-5)
    }

    /// Float32 rounding of the transforms: within 1e-5 of im2col on a layer of ResNet-20's size.
    func testMatchesIm2colInFloatOnAResNetLayer() throws {
        XCTAssertLessThan(try compareWithIm2col(Float.self, input: [32, 16, 16], out: 32, padding: 1, batch: 4), 1e-5)
        XCTAssertLessThan(try compareWithIm2col(Float.self, input: [16, 15, 15], out: 24, padding: 1, batch: 5, chunkElements: 40_000), 1e-5)
    }

    /// A weight gradient that is exactly 0 because every product behind it is (ReLU zeros in x and
    /// in dy, one 5 x 5 image): im2col sums those products and keeps it 0; Winograd's transforms
    /// mix products that cancel only in exact arithmetic and leave rounding there, which Adam-family
    /// optimizers step on (README, "How correctness is checked"; `model.convolution: im2col`).
    func testIm2colKeepsAWeightGradientThatIsExactlyZeroAndWinogradDoesNot() throws {
        let channels = 16, side = 5, kernel = 3
        let random = CounterRandom(29, 5)
        let x = Buffer<Float>(count: channels * side * side), dy = Buffer<Float>(count: channels * side * side)
        for i in 0..<x.count { x.pointer[i] = max(0, Float(random.normal(UInt64(i))) - 0.7) }
        for i in 0..<dy.count { dy.pointer[i] = random.normal(UInt64(50_000 + i)) > 0 ? Float(random.normal(UInt64(90_000 + i))) : 0 }
        // Which of dW[o, i, ky, kx] = sum over (r, c) of dy[o, r, c] x[i, r + ky - 1, c + kx - 1] has every product 0.
        var exactlyZero: [Int] = []
        for o in 0..<channels {
            for i in 0..<channels {
                for ky in 0..<kernel {
                    for kx in 0..<kernel {
                        var any = false
                        for r in 0..<side {
                            for c in 0..<side {
                                let (u, v) = (r + ky - 1, c + kx - 1)
                                guard u >= 0, u < side, v >= 0, v < side else { continue }
                                if dy.pointer[(o * side + r) * side + c] != 0 && x.pointer[(i * side + u) * side + v] != 0 { any = true }
                            }
                        }
                        if !any { exactlyZero.append(((o * channels + i) * kernel + ky) * kernel + kx) }
                    }
                }
            }
        }
        XCTAssertGreaterThan(exactlyZero.count, 20, "\(exactlyZero.count)")
        let context = StepContext(isTraining: true, seed: 1, step: 0, firstSampleIndex: 0, globalBatch: 1,
                                  communicator: SoloCommunicator())
        func nonzero(_ algorithm: ConvolutionAlgorithm) throws -> Int {
            let conv = try makeConv(Float.self, input: [channels, side, side], out: channels, padding: 1, bias: false, algorithm)
            XCTAssertEqual(conv.algorithm, algorithm)
            let parameters = Buffer<Float>(count: conv.parameterShapes[0].count), gradients = Buffer<Float>(count: parameters.count)
            for i in 0..<parameters.count { parameters.pointer[i] = Float(random.normal(UInt64(200_000 + i))) }
            conv.bind(parameters: parameters.pointer, gradients: gradients.pointer)
            conv.reserve(maxBatch: 1)
            let y = Buffer<Float>(count: dy.count), dx = Buffer<Float>(count: x.count)
            try conv.forward(x.pointer, y.pointer, batch: 1, context: context)
            try conv.backward(x.pointer, y.pointer, dy.pointer, dx.pointer, batch: 1, context: context)
            return exactlyZero.filter { gradients.pointer[$0] != 0 }.count
        }
        XCTAssertEqual(try nonzero(.im2col), 0)
        XCTAssertGreaterThan(try nonzero(.winograd), 0, "if Winograd keeps exact zeros now, the README's caveat can go")
    }

    func testAutomaticChoiceKeepsFewChannelsAndOtherKernelsOnIm2col() throws {
        func algorithm(_ input: [Int], out: Int, kernel: Int = 3, stride: Int = 1) throws -> ConvolutionAlgorithm {
            try Conv2D<Float>(input: input, outChannels: out, kernel: kernel, stride: stride, padding: 1, bias: false,
                              initializer: LayerInit(), index: 0).algorithm
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, nil) {
            XCTAssertEqual(try algorithm([16, 32, 32], out: 16), .winograd)
            XCTAssertEqual(try algorithm([3, 32, 32], out: 16), .im2col)
            XCTAssertEqual(try algorithm([16, 32, 32], out: 32, stride: 2), .im2col)
            XCTAssertEqual(try algorithm([16, 32, 32], out: 32, kernel: 5), .im2col)
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, "im2col") {
            XCTAssertEqual(try algorithm([16, 32, 32], out: 16), .im2col)
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, "winograd") {
            XCTAssertEqual(try algorithm([3, 32, 32], out: 4), .winograd)
            XCTAssertEqual(try algorithm([3, 32, 32], out: 4, stride: 2), .im2col)
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, "fast") {
            XCTAssertThrowsError(try algorithm([16, 32, 32], out: 16)) { error in
                XCTAssertEqual("\(error)", "COHORT_CONV_ALGORITHM=fast: expected im2col, winograd or auto")
            }
        }
    }

    /// `model.convolution` chooses for every convolution of the model, those inside residual blocks
    /// included, before the environment; `winograd` where it applies and im2col elsewhere.
    func testModelConvolutionChoosesForEveryLayer() throws {
        func algorithms(_ preference: String?) throws -> [ConvolutionAlgorithm] {
            let text = """
                data: {train: {images: x.npy, labels: y.npy}}
                model:
                  input: [3, 8, 8]
                  \(preference.map { "convolution: \($0)" } ?? "")
                  layers:
                    - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
                    - residual:
                        body:
                          - conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
                          - conv2d: {out_channels: 32, kernel_size: 3, stride: 2, padding: 1}
                        shortcut:
                          - conv2d: {out_channels: 32, kernel_size: 1, stride: 2}
                    - flatten: {}
                    - dense: {out_features: 10}
                train: {batch_size: 4, max_steps: 1}
                """
            let model = try Model<Float>(try ConfigLoader.parse(text, file: "c.yaml").model)
            var found: [ConvolutionAlgorithm] = []
            func walk(_ layer: any Layer<Float>) {
                if let conv = layer as? Conv2D<Float> { found.append(conv.algorithm) }
                for sublayer in layer.sublayers { walk(sublayer.layer) }
            }
            model.layers.forEach(walk)
            return found
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, nil) {
            XCTAssertEqual(try algorithms(nil), [.im2col, .winograd, .im2col, .im2col])
            XCTAssertEqual(try algorithms("auto"), [.im2col, .winograd, .im2col, .im2col])
            XCTAssertEqual(try algorithms("im2col"), [.im2col, .im2col, .im2col, .im2col])
            XCTAssertEqual(try algorithms("winograd"), [.winograd, .winograd, .im2col, .im2col])
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, "winograd") {
            XCTAssertEqual(try algorithms("im2col"), [.im2col, .im2col, .im2col, .im2col])
            XCTAssertEqual(try algorithms("auto"), [.winograd, .winograd, .im2col, .im2col])
        }
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, "fast") {
            XCTAssertThrowsError(try algorithms("im2col"), "a mistyped environment is an error even where the config decides")
        }
        XCTAssertThrowsError(try algorithms("direct")) { error in
            XCTAssertEqual("\(error)", "c.yaml: model.convolution: unknown 'direct' (expected auto, im2col or winograd) (line 4)")
        }
    }

    func testExplicitWinogradOnAStridedConvolutionIsAnError() {
        XCTAssertThrowsError(try Conv2D<Float>(input: [4, 8, 8], outChannels: 4, kernel: 3, stride: 2, padding: 1, bias: false,
                                               initializer: LayerInit(), index: 2, algorithm: .winograd))
    }

    /// PyTorch's fixtures with every 3x3 stride-1 convolution through Winograd.
    func trainFixtureThroughWinograd(_ name: String) throws {
        try withEnvironment(ConvolutionAlgorithm.environmentVariable, "winograd") {
            try checkAgainstPyTorch(fixture: name, in: self)
        }
    }

    func testConvNetWithMomentumMatchesPyTorchThroughWinograd() throws { try trainFixtureThroughWinograd("cnn_momentum") }
    func testConvNetWithAdamMatchesPyTorchThroughWinograd() throws { try trainFixtureThroughWinograd("cnn_adam") }
    func testStochasticConvNetMatchesPyTorchThroughWinograd() throws { try trainFixtureThroughWinograd("cnn_stochastic") }
    func testResidualNetworkMatchesPyTorchThroughWinograd() throws { try trainFixtureThroughWinograd("resnet_nesterov") }
    func testNestedResidualNetworkMatchesPyTorchThroughWinograd() throws { try trainFixtureThroughWinograd("resnet_nested_cosine") }

    /// The products through `streamedProduct` (`COHORT_WINOGRAD_PRODUCT=streamed`, which a debug
    /// build takes only when told): planes of 3 x 64 and 8 x 16 tiles (whole panels, streamed; 20 and
    /// 12 output channels: partial tiles of rows) and of 2 x 49 (BLAS), against im2col.
    func testStreamedProductsMatchIm2col() throws {
        try withEnvironment(WinogradProductKernel.environmentVariable, "streamed") {
            XCTAssertLessThan(try compareWithIm2col(Float.self, input: [12, 16, 16], out: 20, padding: 1, batch: 3), 1e-5)
            XCTAssertLessThan(try compareWithIm2col(Float.self, input: [20, 8, 8], out: 12, padding: 1, batch: 8), 1e-5)
            XCTAssertLessThan(try compareWithIm2col(Float.self, input: [8, 14, 14], out: 16, padding: 1, batch: 2), 1e-5)
        }
    }

    /// resnet_nesterov's 8 x 8 and 4 x 4 maps, 16 images a chunk: 256 and 64 tiles a plane, streamed.
    func testResidualNetworkMatchesPyTorchThroughStreamedProducts() throws {
        try withEnvironment(WinogradProductKernel.environmentVariable, "streamed") {
            try trainFixtureThroughWinograd("resnet_nesterov")
        }
    }

    func testUnknownWinogradProductKernelIsAnError() throws {
        try withEnvironment(WinogradProductKernel.environmentVariable, "fast") {
            XCTAssertThrowsError(try makeConv(Float.self, input: [4, 8, 8], out: 4, padding: 1, bias: false, .winograd)) { error in
                XCTAssertEqual("\(error)", "COHORT_WINOGRAD_PRODUCT=fast: expected streamed, blas or auto")
            }
        }
    }
}

/// Runs `body` with `name` set to `value` (or unset), then restores it.
func withEnvironment(_ name: String, _ value: String?, _ body: () throws -> Void) throws {
    let saved = ProcessInfo.processInfo.environment[name]
    func set(_ value: String?) {
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
    set(value)
    defer { set(saved) }
    try body()
}
