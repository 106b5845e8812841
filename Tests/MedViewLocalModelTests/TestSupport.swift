import Foundation
import Testing
@testable import MedViewLocalModel

/// Where the tests look for the real model file: `$MEDVIEW_LOCAL_MODEL`, else the cache that
/// `scripts/test.sh` fills (`.build/medview-model-cache/models/`), else `./data/models/`.
enum RealModel {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let path: String? = {
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["MEDVIEW_LOCAL_MODEL"], !explicit.isEmpty { candidates.append(explicit) }
        candidates.append(repositoryRoot.appendingPathComponent(".build/medview-model-cache/models/\(ModelFetcher.fileName)").path)
        candidates.append(repositoryRoot.appendingPathComponent("data/models/\(ModelFetcher.fileName)").path)
        let found = candidates.first { FileManager.default.fileExists(atPath: $0) }
        if found == nil {
            print("SKIPPING real-model tests: \(ModelFetcher.fileName) not found (run `medview model fetch --data-dir .build/medview-model-cache` or set MEDVIEW_LOCAL_MODEL).")
        }
        return found
    }()

    static var available: Bool { path != nil }

    /// Loaded once per test process (mapping is cheap, but the tokenizer tables are not).
    nonisolated(unsafe) private static var cached: LlamaModel?
    private static let lock = NSLock()

    static func load() throws -> LlamaModel {
        try lock.withLock {
            if let cached { return cached }
            let model = try LlamaModel(path: try #require(path))
            cached = model
            return model
        }
    }
}

/// Reads a JSON fixture written by scripts/llama_reference.py.
func fixture<T: Decodable>(_ name: String, as: T.Type) throws -> T {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"), "fixture \(name).json missing")
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

/// Builds a GGUF file in memory, for reader tests.
struct GGUFBuilder {
    var version: UInt32 = 3
    var bytes: [UInt8] = []
    var metadata: [(String, UInt32, [UInt8])] = []
    var tensors: [(name: String, dims: [UInt64], type: UInt32, data: [UInt8])] = []
    var alignment = 32

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func string(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func add(_ key: String, type: UInt32, _ payload: [UInt8]) { metadata.append((key, type, payload)) }

    func build() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8) + Self.le(version) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(metadata.count))
        for (key, type, payload) in metadata {
            out += Self.string(key) + Self.le(type) + payload
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (i, t) in tensors.enumerated() {
            out += Self.string(t.name) + Self.le(UInt32(t.dims.count))
            for d in t.dims { out += Self.le(d) }
            out += Self.le(t.type) + Self.le(UInt64(offsets[i]))
        }
        while out.count % alignment != 0 { out.append(0) }
        for (i, t) in tensors.enumerated() {
            out += t.data
            // Padding between tensors only: the file ends where the last tensor's data ends.
            while i < tensors.count - 1, out.count % alignment != 0 { out.append(0) }
        }
        return out
    }
}

/// A temporary file that is removed when the test ends.
func withTemporaryFile<R>(_ bytes: [UInt8], _ body: (String) throws -> R) throws -> R {
    let path = NSTemporaryDirectory() + "gguf-test-\(UUID().uuidString).gguf"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// IEEE half bits of a Float (round to nearest even is not needed: tests use exact values).
func halfBits(_ value: Float) -> UInt16 {
    if value == 0 { return value.sign == .minus ? 0x8000 : 0 }
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF) - 127 + 15
    let mantissa = UInt16((bits >> 13) & 0x3FF)
    return sign | UInt16(exponent) << 10 | mantissa
}

/// Runs heavy synchronous model work on a thread of its own and awaits the result, so that the
/// Swift concurrency pool (two threads on a 2-core machine) stays free for the timing-sensitive
/// tests that run alongside (timeouts of the HTTP models, the server's keep-alives). Expectations
/// belong after the await, in the test's own task.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
