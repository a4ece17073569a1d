import Foundation
import XCTest
@testable import Cohort

/// The recurrent layers' own matrix product (`panelProduct` on matrices packed once per pass):
/// against a product in Double, against BLAS, independent of the number of rows, and PyTorch's
/// recurrent fixtures trained through it.
final class PanelProductTests: XCTestCase {
    func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
        let random = CounterRandom(seed)
        return (0..<count).map { Float(random.normal(UInt64($0))) }
    }

    /// c = a op(W) (+ c), computed in Double. w: `[n, k]` when transposed, else `[k, n]`.
    func reference(_ a: [Float], _ w: [Float], _ c: [Float], m: Int, n: Int, k: Int, transposed: Bool, accumulate: Bool) -> [Double] {
        (0..<(m * n)).map { index in
            let (i, j) = (index / n, index % n)
            var sum = accumulate ? Double(c[index]) : 0
            for kk in 0..<k { sum += Double(a[i * k + kk]) * Double(transposed ? w[j * k + kk] : w[kk * n + j]) }
            return sum
        }
    }

    func product(_ a: [Float], _ w: [Float], _ c: [Float], m: Int, n: Int, k: Int, transposed: Bool, accumulate: Bool,
                 panels: Bool, fromRow k0: Int = 0) -> [Float] {
        let operand = RepeatedOperand<Float>(k: k, n: n, transposed: transposed, panels: panels)
        var c = c
        w.withUnsafeBufferPointer { operand.prepare($0.baseAddress!) }
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer {
                operand.multiply(m: m, a.baseAddress!, lda: k, into: $0.baseAddress!, ldc: n, accumulate: accumulate, fromRow: k0)
            }
        }
        return c
    }

    /// Leaving out the rows of W that meet zeros of a (h_{-1} at a recurrent layer's first step)
    /// changes no bit of the panels' product; through BLAS it is the product in Double.
    func testAProductFromARowLeavesOutOnlyZeros() {
        let (m, n, k, k0) = (11, 70, 40, 24)
        var a = randomFloats(m * k, seed: 10)
        for i in 0..<m { for kk in 0..<k0 { a[i * k + kk] = 0 } }
        let w = randomFloats(k * n, seed: 11), c = randomFloats(m * n, seed: 12)
        for transposed in [false, true] {
            for accumulate in [false, true] {
                let label = "transposed \(transposed) accumulate \(accumulate)"
                let whole = product(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: accumulate, panels: true)
                let skipping = product(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: accumulate, panels: true, fromRow: k0)
                XCTAssertEqual(skipping, whole, label)
                let blas = product(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: accumulate, panels: false, fromRow: k0)
                let expected = reference(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: accumulate)
                XCTAssertLessThan(zip(blas, expected).map { abs(Double($0) - $1) }.max()!, 1e-4, label)
            }
        }
    }

    /// Shapes with partial tiles of rows (m % 8) and columns (n % 32), and whole ones.
    func testPanelProductMatchesDoublePrecisionOnWholeAndPartialTiles() {
        for (m, n, k) in [(1, 1, 1), (11, 45, 19), (16, 64, 7), (8, 32, 128), (33, 100, 40), (3, 512, 128)] {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    let a = randomFloats(m * k, seed: 1), w = randomFloats(k * n, seed: 2), c = randomFloats(m * n, seed: 3)
                    let ours = product(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: accumulate, panels: true)
                    let expected = reference(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: accumulate)
                    let error = zip(ours, expected).map { abs(Double($0) - $1) }.max()!
                    XCTAssertLessThan(error, 1e-5 * Double(k).squareRoot() * 4,
                                      "m \(m) n \(n) k \(k) transposed \(transposed) accumulate \(accumulate)")
                }
            }
        }
    }

    func testPanelProductAgreesWithBLAS() {
        let (m, n, k) = (32, 512, 128)
        let a = randomFloats(m * k, seed: 4), w = randomFloats(k * n, seed: 5), c = randomFloats(m * n, seed: 6)
        for transposed in [false, true] {
            let ours = product(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: true, panels: true)
            let blas = product(a, w, c, m: m, n: n, k: k, transposed: transposed, accumulate: true, panels: false)
            XCTAssertLessThan(relativeError(ours.map(Double.init), blas.map(Double.init)), 1e-6)
        }
    }

    /// A row's result is the same, bit for bit, alone or at any place in a larger product: how
    /// the batch is split over workers does not change a sample's result.
    func testARowsResultDoesNotDependOnTheOtherRows() {
        let (m, n, k) = (13, 70, 33)
        let a = randomFloats(m * k, seed: 7), w = randomFloats(k * n, seed: 8), c = randomFloats(m * n, seed: 9)
        let whole = product(a, w, c, m: m, n: n, k: k, transposed: true, accumulate: true, panels: true)
        for row in [0, 5, 8, 12] {
            let alone = product(Array(a[(row * k)..<((row + 1) * k)]), w, Array(c[(row * n)..<((row + 1) * n)]),
                                m: 1, n: n, k: k, transposed: true, accumulate: true, panels: true)
            XCTAssertEqual(alone, Array(whole[(row * n)..<((row + 1) * n)]), "row \(row)")
        }
    }

    /// `streamedProduct` (the Winograd planes' product) against Double, with a and with a^T, on
    /// partial tiles of rows and columns; b padded by a panel's width, which it may read.
    func testStreamedProductMatchesDoublePrecision() {
        for (m, n, k) in [(1, 1, 1), (11, 45, 19), (16, 64, 7), (20, 96, 12), (64, 256, 64), (5, 33, 3)] {
            for transposedA in [false, true] {
                let a = randomFloats(m * k, seed: 11), b = randomFloats(k * n + panelWidth, seed: 12)
                var c = [Float](repeating: .nan, count: m * n)
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer {
                            streamedProduct(m: m, n: n, k: k, a: a.baseAddress!, lda: transposedA ? m : k, transposedA: transposedA,
                                            b: b.baseAddress!, ldb: n, c: $0.baseAddress!, ldc: n)
                        }
                    }
                }
                let expected = (0..<(m * n)).map { index in
                    let (i, j) = (index / n, index % n)
                    return (0..<k).reduce(0.0) { sum, kk in
                        sum + Double(transposedA ? a[kk * m + i] : a[i * k + kk]) * Double(b[kk * n + j])
                    }
                }
                let error = zip(c, expected).map { abs(Double($0) - $1) }.max()!
                XCTAssertLessThan(error, 1e-5 * Double(k).squareRoot() * 4, "m \(m) n \(n) k \(k) transposedA \(transposedA)")
            }
        }
    }

    func testUnknownRecurrentProductKernelIsAnError() throws {
        try withEnvironment(RecurrentProductKernel.environmentVariable, "fast") {
            XCTAssertThrowsError(try LSTM<Float>(input: [3, 2], hiddenSize: 4, returnSequences: false, bias: true,
                                                 initializer: LayerInit(), index: 0)) { error in
                XCTAssertEqual((error as? CohortError)?.message, "COHORT_RECURRENT_PRODUCT=fast: expected panels, blas or auto")
            }
        }
    }

    func trainFixtureThroughPanels(_ name: String) throws {
        try withEnvironment(RecurrentProductKernel.environmentVariable, "panels") {
            try checkAgainstPyTorch(fixture: name, in: self)
        }
    }

    func testLSTMWithMomentumMatchesPyTorchThroughPanels() throws { try trainFixtureThroughPanels("lstm_momentum") }
    func testGRUWithNesterovMatchesPyTorchThroughPanels() throws { try trainFixtureThroughPanels("gru_nesterov") }
    func testStackedLSTMAndReLURNNMatchPyTorchThroughPanels() throws { try trainFixtureThroughPanels("lstm_rnn_relu_stacked") }
}
