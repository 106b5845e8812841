import Foundation
import Testing
@testable import MedViewLocalModel

@Suite struct GGUFFileTests {
    typealias B = GGUFBuilder

    /// A small file with every metadata value type, a nested array, and two tensors.
    static func sample(alignment: UInt32? = nil) -> GGUFBuilder {
        var b = GGUFBuilder()
        b.add("u8", type: 0, [200])
        b.add("i8", type: 1, [0xFE])
        b.add("u16", type: 2, B.le(UInt16(60_000)))
        b.add("i16", type: 3, B.le(Int16(-300)))
        b.add("u32", type: 4, B.le(UInt32(4_000_000_000)))
        b.add("i32", type: 5, B.le(Int32(-70_000)))
        b.add("f32", type: 6, B.le(Float(1.5).bitPattern))
        b.add("bool", type: 7, [1])
        b.add("str", type: 8, B.string("héllo 😀"))
        b.add("u64", type: 10, B.le(UInt64(1) << 40))
        b.add("i64", type: 11, B.le(Int64(-5)))
        b.add("f64", type: 12, B.le(Double(-2.25).bitPattern))
        b.add("strings", type: 9, B.le(UInt32(8)) + B.le(UInt64(2)) + B.string("a") + B.string("bc"))
        b.add("nested", type: 9, B.le(UInt32(9)) + B.le(UInt64(1)) + B.le(UInt32(5)) + B.le(UInt64(2)) + B.le(Int32(1)) + B.le(Int32(-1)))
        if let alignment {
            b.alignment = Int(alignment)
            b.add("general.alignment", type: 4, B.le(alignment))
        }
        let floats: [Float] = [1, 2, 3, 4, 5, 6]
        b.tensors.append(("weights", [3, 2], 0, floats.flatMap { B.le($0.bitPattern) }))
        b.tensors.append(("q", [32], 8, B.le(halfBits(0.5)) + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }))
        return b
    }

    @Test func readsEveryMetadataTypeAndTheTensorTable() throws {
        try withTemporaryFile(Self.sample().build()) { path in
            let file = try GGUFFile(path: path)
            #expect(file.version == 3)
            #expect(file.metadata["u8"] == .uint8(200))
            #expect(file.metadata["i8"] == .int8(-2))
            #expect(file.metadata["u16"] == .uint16(60_000))
            #expect(file.metadata["i16"] == .int16(-300))
            #expect(file.metadata["u32"] == .uint32(4_000_000_000))
            #expect(file.metadata["i32"] == .int32(-70_000))
            #expect(file.metadata["f32"] == .float32(1.5))
            #expect(file.metadata["bool"] == .bool(true))
            #expect(file.metadata["str"] == .string("héllo 😀"))
            #expect(file.metadata["u64"] == .uint64(1 << 40))
            #expect(file.metadata["i64"] == .int64(-5))
            #expect(file.metadata["f64"] == .float64(-2.25))
            #expect(file.metadata["strings"] == .array(elementType: 8, [.string("a"), .string("bc")]))
            #expect(file.metadata["nested"] == .array(elementType: 9, [.array(elementType: 5, [.int32(1), .int32(-1)])]))
            #expect(file.alignment == 32)
            #expect(file.dataOffset % 32 == 0)
            let weights = try #require(file.tensors["weights"])
            #expect(weights.dimensions == [3, 2])
            #expect(weights.rowLength == 3 && weights.rowCount == 2)
            #expect(weights.type == .f32)
            let data = file.data(of: weights)
            #expect(data.count == 24)
            #expect((0..<6).map { data.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } == [1, 2, 3, 4, 5, 6])
            let q = try #require(file.tensors["q"])
            #expect(q.type == .q8_0 && q.byteCount == 34 && q.offset == 32)
            #expect(file.tensorInfos.map(\.name) == ["weights", "q"])
        }
    }

    @Test func honoursGeneralAlignment() throws {
        try withTemporaryFile(Self.sample(alignment: 64).build()) { path in
            let file = try GGUFFile(path: path)
            #expect(file.alignment == 64)
            #expect(file.dataOffset % 64 == 0)
            #expect(file.tensors["q"]?.offset == 64)
            let q = try #require(file.tensors["q"])
            #expect(file.data(of: q).loadUnaligned(fromByteOffset: 2, as: Int8.self) == -16)
        }
    }

    /// Every truncation of a valid file is refused with a typed error; none crashes.
    @Test func everyTruncationIsATypedError() throws {
        let full = Self.sample().build()
        for length in 0..<full.count {
            try withTemporaryFile(Array(full.prefix(length))) { path in
                do {
                    _ = try GGUFFile(path: path)
                    Issue.record("a file cut to \(length) of \(full.count) bytes was accepted")
                } catch let error as GGUFError {
                    switch error {
                    case .truncated, .tensorOutOfRange, .implausibleCount: break
                    default: Issue.record("unexpected error \(error) at length \(length)")
                    }
                } catch {
                    Issue.record("untyped error \(error)")
                }
            }
        }
    }

    @Test func corruptHeadersAreTypedErrors() throws {
        func expectError(_ bytes: [UInt8], _ check: (GGUFError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
            try withTemporaryFile(bytes) { path in
                do {
                    _ = try GGUFFile(path: path)
                    Issue.record("corrupt file accepted", sourceLocation: sourceLocation)
                } catch let error as GGUFError {
                    #expect(check(error), "got \(error)", sourceLocation: sourceLocation)
                } catch {
                    Issue.record("untyped error \(error)", sourceLocation: sourceLocation)
                }
            }
        }
        var bytes = Self.sample().build()
        bytes[0] = UInt8(ascii: "X")
        try expectError(bytes) { $0 == .badMagic }

        var b = Self.sample()
        b.version = 4
        try expectError(b.build()) { $0 == .unsupportedVersion(4) }

        // A metadata count far beyond what the file could hold.
        bytes = Self.sample().build()
        bytes.replaceSubrange(16..<24, with: B.le(UInt64.max))
        try expectError(bytes) { if case .implausibleCount = $0 { true } else { false } }
        // A tensor count far beyond what the file could hold.
        bytes = Self.sample().build()
        bytes.replaceSubrange(8..<16, with: B.le(UInt64(1) << 50))
        try expectError(bytes) { if case .implausibleCount = $0 { true } else { false } }

        // A string length past the end.
        b = GGUFBuilder()
        b.add("s", type: 8, B.le(UInt64(1) << 62) + Array("x".utf8))
        try expectError(b.build()) { if case .truncated = $0 { true } else { false } }

        // An array whose count cannot fit.
        b = GGUFBuilder()
        b.add("a", type: 9, B.le(UInt32(4)) + B.le(UInt64(1) << 40))
        try expectError(b.build()) { if case .implausibleCount = $0 { true } else { false } }

        // An unknown value type; invalid UTF-8; a bad bool.
        b = GGUFBuilder()
        b.add("t", type: 13, [0])
        try expectError(b.build()) { $0 == .badValueType(13) }
        b = GGUFBuilder()
        b.add("s", type: 8, B.le(UInt64(2)) + [0xC3, 0x28])
        try expectError(b.build()) { if case .badString = $0 { true } else { false } }
        b = GGUFBuilder()
        b.add("b", type: 7, [7])
        try expectError(b.build()) { if case .badValueType = $0 { true } else { false } }

        // A bad alignment.
        b = GGUFBuilder()
        b.add("general.alignment", type: 4, B.le(UInt32(48)))
        try expectError(b.build()) { $0 == .badAlignment }

        // Tensors: unknown type, zero dimension, too many dimensions, partial blocks, data out of range.
        b = GGUFBuilder()
        b.tensors.append(("t", [4], 99, [UInt8](repeating: 0, count: 16)))
        try expectError(b.build()) { $0 == .unsupportedTensorType(name: "t", type: 99) }
        b = GGUFBuilder()
        b.tensors.append(("t", [0], 0, []))
        try expectError(b.build()) { $0 == .badShape(name: "t") }
        b = GGUFBuilder()
        b.tensors.append(("t", [1, 1, 1, 1, 1], 0, [0, 0, 0, 0]))
        try expectError(b.build()) { $0 == .badShape(name: "t") }
        b = GGUFBuilder()
        b.tensors.append(("t", [16], 8, [UInt8](repeating: 0, count: 34)))
        try expectError(b.build()) { $0 == .badShape(name: "t") }
        bytes = Self.sample().build()
        bytes.removeLast(20)  // the q tensor's data no longer fits
        try expectError(bytes) { $0 == .tensorOutOfRange(name: "q") }
        b = GGUFBuilder()
        b.tensors.append(("t", [4], 0, [UInt8](repeating: 0, count: 16)))
        b.tensors.append(("t", [4], 0, [UInt8](repeating: 0, count: 16)))
        try expectError(b.build()) { $0 == .duplicateTensor(name: "t") }
    }

    @Test func aMissingFileIsATypedError() {
        #expect(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/model.gguf") }
    }

    @Test func theRealModelFileHasTheExpectedShape() throws {
        guard RealModel.available else { return }
        let model = try RealModel.load()
        let h = model.hyperparameters
        #expect(h.layerCount == 30 && h.embeddingLength == 576 && h.headCount == 9 && h.kvHeadCount == 3)
        #expect(h.feedForwardLength == 1536 && h.vocabularySize == 49152 && h.ropeDimensions == 64)
        #expect(model.file.tensors["token_embd.weight"]?.type == .q8_0)
        #expect(model.file.tensors["blk.0.attn_q.weight"]?.type == .q4_1)
        #expect(model.file.tensors["output.weight"] == nil)
    }
}
