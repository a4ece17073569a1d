import XCTest
@testable import Cohort

/// A convolution followed by batch norm sums the batch norm's input moments as it writes its output
/// (`Conv2D.outputMoments`): the normalisation must come out bitwise as when it takes them itself.
final class ConvolutionMomentsTests: XCTestCase {
    /// Through a `Sequential` (moments from the convolution, chunk by chunk or image by image)
    /// against the same two layers run one after the other (moments from the batch norm's own pass).
    func testBatchNormAfterAConvolutionNormalisesAsWithItsOwnMoments() throws {
        for (algorithm, chunkElements) in [(ConvolutionAlgorithm.winograd, 1), (.winograd, 6_000), (.im2col, 0)] {
            let batch = 5
            func layers() throws -> (Conv2D<Float>, BatchNorm<Float>) {
                let conv = try Conv2D<Float>(input: [3, 10, 10], outChannels: 4, kernel: 3, stride: 1, padding: 1, bias: true,
                                             initializer: LayerInit(), index: 0, algorithm: algorithm)
                if chunkElements > 0 { conv.chunkElements = chunkElements }
                let norm = try BatchNorm<Float>(input: [4, 10, 10], momentum: 0.1, epsilon: 1e-5, synchronized: true, index: 1)
                return (conv, norm)
            }
            let (conv, norm) = try layers(), (linkedConv, linkedNorm) = try layers()
            let sequence = try Sequential<Float>([linkedConv, linkedNorm], inputShape: [3, 10, 10], place: { LayerPlace(integerLiteral: $0) })
            let count = sequence.parameterShapes.reduce(0) { $0 + $1.count }
            let parameters = Buffer<Float>(count: count), gradients = Buffer<Float>(count: count)
            sequence.bind(parameters: parameters.pointer, gradients: gradients.pointer)
            sequence.initialize(seed: 4, layerIndex: 0)
            // Mean and spread away from 0 and 1, so that a sum left out moves the statistics.
            for i in 0..<count { parameters.pointer[i] += 0.2 * Float(i % 7) }
            conv.bind(parameters: parameters.pointer, gradients: gradients.pointer)
            norm.bind(parameters: parameters.pointer + conv.parameterShapes.reduce(0) { $0 + $1.count },
                      gradients: gradients.pointer + conv.parameterShapes.reduce(0) { $0 + $1.count })
            for layer in [conv, norm, sequence] as [any Layer<Float>] { layer.reserve(maxBatch: batch) }
            let random = CounterRandom(9)
            let x = (0..<(batch * 300)).map { Float(random.normal(UInt64($0))) + 0.5 }
            let context = StepContext(isTraining: true, seed: 1, step: 0, firstSampleIndex: 0, globalBatch: batch,
                                      communicator: SoloCommunicator())
            var convOutput = [Float](repeating: .nan, count: batch * 400)
            var expected = convOutput, y = convOutput
            // Twice: the second step's sums must start from zero again.
            for step in 0..<2 {
                conv.forward(x, &convOutput, batch: batch, context: context)
                try norm.forward(convOutput, &expected, batch: batch, context: context)
                try sequence.forward(x, &y, batch: batch, context: context)
                let differing = y.indices.filter { y[$0].bitPattern != expected[$0].bitPattern }
                XCTAssertEqual(differing.count, 0, "\(algorithm), chunks of \(chunkElements), step \(step): first at \(differing.first ?? -1)")
            }
            let running = norm.buffers().prefix(2).flatMap { tensor -> [Float] in
                guard case let .scalars(p) = tensor.storage else { return [] }
                return Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: Float.self), count: 4))
            }
            let linkedRunning = linkedNorm.buffers().prefix(2).flatMap { tensor -> [Float] in
                guard case let .scalars(p) = tensor.storage else { return [] }
                return Array(UnsafeBufferPointer(start: p.assumingMemoryBound(to: Float.self), count: 4))
            }
            XCTAssertEqual(linkedRunning.map(\.bitPattern), running.map(\.bitPattern), "\(algorithm)")
            XCTAssertNil(linkedConv.outputMoments, "left set after the forward")
        }
    }
}
