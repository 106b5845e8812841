import Foundation
import Testing
@testable import MedViewLocalModel

@Suite struct ModelFetcherTests {
    @Test func sha256OfAFileMatchesTheStandardVector() throws {
        let digest = try withTemporaryFile(Array("abc".utf8)) { path in try ModelFetcher.sha256(ofFileAt: path) }
        #expect(digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func aFileOfTheWrongSizeIsNotTakenAsCached() throws {
        let directory = NSTemporaryDirectory() + "fetcher-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let fetcher = ModelFetcher(dataDirectory: directory)
        #expect(fetcher.modelPath == directory + "/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        #expect(!fetcher.isCached)
        try FileManager.default.createDirectory(atPath: fetcher.cacheDirectory, withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: fetcher.modelPath))
        #expect(!fetcher.isCached)
    }

    @Test func aModelFileThatIsNotGGUFIsATypedError() throws {
        _ = try withTemporaryFile(Array("not a model at all".utf8)) { path in
            #expect(throws: LocalModelError.file(.badMagic)) { try LocalModel(path: path) }
        }
        #expect(throws: LocalModelError.self) { try LocalModel(path: "/nonexistent/file.gguf") }
    }

    @Test(.enabled(if: RealModel.available, "needs the model file (medview model fetch)"))
    func theCachedModelHasThePinnedChecksum() throws {
        let path = try #require(RealModel.path)
        #expect(try ModelFetcher.sha256(ofFileAt: path) == ModelFetcher.sha256)
    }
}
