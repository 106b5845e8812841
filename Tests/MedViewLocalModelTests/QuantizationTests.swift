import Foundation
import Testing
@testable import MedViewLocalModel

/// Each weight format, dequantised from hand-built blocks and multiplied against a vector.
@Suite struct QuantizationTests {
    typealias B = GGUFBuilder

    static let x: [Float] = (0..<64).map { Float($0 % 7) - 2.5 }

    /// Dequantises row `row` and checks it and the dot product against `expected` (2 rows × 64).
    func check(_ type: GGMLType, bytes: [UInt8], expected: [[Float]]) throws {
        try bytes.withUnsafeBytes { raw in
            let m = try WeightMatrix(type: type, rows: expected.count, columns: 64, bytes: raw)
            var sums = [Float](repeating: 0, count: 2)
            Self.x.withUnsafeBufferPointer { xp in
                sums.withUnsafeMutableBufferPointer { blockSums(xp.baseAddress!, count: 64, into: $0.baseAddress!) }
            }
            for (r, row) in expected.enumerated() {
                var out = [Float](repeating: .nan, count: 64)
                out.withUnsafeMutableBufferPointer { m.dequantizeRow(r, into: $0.baseAddress!) }
                #expect(out == row, "row \(r)")
                let reference = zip(row, Self.x).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                let dot = Self.x.withUnsafeBufferPointer { xp in sums.withUnsafeBufferPointer { m.dot(row: r, xp.baseAddress!, blockSums: $0.baseAddress!) } }
                #expect(abs(dot - reference) <= 1e-3 * max(1, abs(reference)), "dot row \(r): \(dot) vs \(reference)")
            }
        }
    }

    @Test func q4_1BlocksAreScaleTimesNibblePlusMinimum() throws {
        // Block: d = 0.5, m = -2; byte j = (j) | (15 - j) << 4 → weight j = j·0.5 − 2, weight j+16 = (15 − j)·0.5 − 2.
        var bytes: [UInt8] = []
        var expected: [[Float]] = []
        for (d, m) in [(Float(0.5), Float(-2)), (Float(0.25), Float(1))] {
            var row: [Float] = Array(repeating: 0, count: 64)
            for block in 0..<2 {
                let bd = d * Float(block + 1), bm = m + Float(block)
                bytes += B.le(halfBits(bd)) + B.le(halfBits(bm))
                for j in 0..<16 {
                    let lo = (j + block) % 16, hi = 15 - j
                    bytes.append(UInt8(lo | hi << 4))
                    row[block * 32 + j] = Float(lo) * bd + bm
                    row[block * 32 + j + 16] = Float(hi) * bd + bm
                }
            }
            expected.append(row)
        }
        #expect(bytes.count == 2 * 2 * 20)
        try check(.q4_1, bytes: bytes, expected: expected)
    }

    @Test func q8_0BlocksAreScaleTimesSignedByte() throws {
        var bytes: [UInt8] = []
        var expected: [[Float]] = []
        for d in [Float(0.125), Float(-2)] {
            var row: [Float] = []
            for block in 0..<2 {
                let bd = d * Float(block + 1)
                bytes += B.le(halfBits(bd))
                for j in 0..<32 {
                    let q = Int8(clamping: (j * 9 + block * 5) % 256 - 128)
                    bytes.append(UInt8(bitPattern: q))
                    row.append(Float(q) * bd)
                }
            }
            expected.append(row)
        }
        #expect(bytes.count == 2 * 2 * 34)
        try check(.q8_0, bytes: bytes, expected: expected)
    }

    @Test func f16AndF32() throws {
        let values: [Float] = (0..<128).map { Float($0 - 64) * 0.25 }
        try check(.f16, bytes: values.flatMap { B.le(halfBits($0)) }, expected: [Array(values[0..<64]), Array(values[64...])])
        try check(.f32, bytes: values.flatMap { B.le($0.bitPattern) }, expected: [Array(values[0..<64]), Array(values[64...])])
    }

    @Test func halfConversionCoversSpecialValues() {
        #expect(halfBitsToFloat(0x3C00) == 1)
        #expect(halfBitsToFloat(0xC000) == -2)
        #expect(halfBitsToFloat(0x3555) == Float(0.33325195))
        #expect(halfBitsToFloat(0x0001) == Float(5.9604645e-8))  // smallest subnormal
        #expect(halfBitsToFloat(0x7BFF) == 65504)
        #expect(halfBitsToFloat(0x7C00) == .infinity)
        #expect(halfBitsToFloat(0x8000) == 0 && halfBitsToFloat(0x8000).sign == .minus)
        #expect(halfBitsToFloat(0x7E00).isNaN)
        #expect(halfToFloatTable[0x3C00] == 1)
    }

    @Test func vectorExponentialMatchesTheCLibrary() {
        var worst: Float = 0
        var x: Float = -87
        while x < 87.9 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.0007 })
            let e = exponential(lanes)
            for i in 0..<16 {
                let reference = Foundation.exp(Double(lanes[i]))
                worst = max(worst, Float(abs(Double(e[i]) - reference) / reference))
            }
            x += 0.0131
        }
        #expect(worst < 5e-7, "largest relative error \(worst)")
        // Softmax and SiLU extremes: far below zero is (nearly) zero, far above stays finite.
        let extremes = exponential(SIMD16<Float>(repeating: -1_000))
        #expect(extremes.max() < 1e-37 && extremes.min() >= 0)
        let large = exponential(SIMD16<Float>(repeating: 1_000))
        #expect(large.min() > 1e38 && large.max().isFinite)
        #expect(exponential(SIMD16<Float>(repeating: 0)) == SIMD16<Float>(repeating: 1))
    }

    @Test func unsupportedFormatsAndShortDataAreRefused() {
        let bytes = [UInt8](repeating: 0, count: 1024)
        bytes.withUnsafeBytes { raw in
            #expect(throws: LocalModelError.unsupportedTensorType(GGMLType.q4_0.rawValue)) { try WeightMatrix(type: .q4_0, rows: 1, columns: 32, bytes: raw) }
            #expect(throws: LocalModelError.self) { try WeightMatrix(type: .q8_0, rows: 100, columns: 64, bytes: raw) }
            #expect(throws: LocalModelError.self) { try WeightMatrix(type: .q8_0, rows: 1, columns: 48, bytes: raw) }
        }
    }
}
