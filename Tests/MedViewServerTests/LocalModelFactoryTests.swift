import Foundation
import Testing
@testable import MedViewServer

/// The `--model local…` settings.
@Suite struct LocalModelFactoryTests {
    static let cachedModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/medview-model-cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    @Test func aLocalFileThatIsMissingOrNotAModelIsRefusedWithItsReason() async throws {
        do {
            _ = try await ModelFactory.make("local:/nonexistent/model.gguf")
            Issue.record("a missing model file was accepted")
        } catch let error as ModelFactory.UnknownModel {
            #expect(error.description.contains("cannot open GGUF file"))
        }
        let path = NSTemporaryDirectory() + "not-a-model-\(UUID().uuidString).gguf"
        try Data("hello".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        await #expect(throws: ModelFactory.UnknownModel.self) { try await ModelFactory.make("local:" + path) }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: cachedModel), "needs the cached model (medview model fetch --data-dir .build/medview-model-cache)"))
    func theDefaultSettingUsesTheCachedLocalDemoModel() async throws {
        // A data dir whose cache already holds the model (linked), so nothing is fetched.
        let dataDirectory = NSTemporaryDirectory() + "factory-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        try FileManager.default.createDirectory(atPath: dataDirectory + "/models", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dataDirectory + "/models/SmolLM2-135M-Instruct.Q4_1.gguf", withDestinationPath: Self.cachedModel)
        let lines = LinesBox()
        let model = try await ModelFactory.make("", context: .init(dataDirectory: dataDirectory, announce: { lines.append($0) }))
        #expect(model.descriptor.provider == "local")
        #expect(model.descriptor.id == "SmolLM2-135M-Instruct-Q4_1")
        #expect(model.descriptor.demo)
        #expect(lines.all.isEmpty, "nothing should be fetched: \(lines.all)")
        let byPath = try await ModelFactory.make("local:" + Self.cachedModel)
        #expect(byPath.descriptor.provider == "local" && byPath.descriptor.demo)
        let scripted = try await ModelFactory.make("scripted")
        #expect(scripted.descriptor.provider == "scripted")
    }
}

final class LinesBox: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}
