import Foundation
import MedViewAWS
import MedViewLocalModel
import MedViewModels
import MedViewSafety

/// The component benchmarks behind `medview bench <target>`: each measures one part of the hot
/// path in memory and prints its figures through `print`. Build with `-c release` for figures
/// worth comparing.
public enum ComponentBenchmarks {
    /// Why a benchmark could not run.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The event-stream decoder on a ConverseStream-like stream: MB/s, messages/s, ns per message.
    public static func eventStream(messages: Int, pieceSize: Int, iterations: Int, print: (String) -> Void) throws {
        print(try EventStreamBenchmark.run(messages: messages, pieceSize: pieceSize, iterations: iterations).description)
    }

    /// The per-delta cost of the Bedrock provider (event-stream decode, JSON, mapping), for both APIs.
    public static func bedrock(deltas: Int, pieceSize: Int, iterations: Int, print: (String) -> Void) throws {
        for api in [BedrockConfiguration.API.converse, .invoke] {
            print(try BedrockBenchmark.run(api: api, deltas: deltas, pieceSize: pieceSize, iterations: iterations).description)
        }
    }

    /// The SSE parser (MB/s) and the per-delta cost of the Anthropic and OpenAI-compatible decoders.
    public static func serverSentEvents(deltas: Int, rounds: Int, print: (String) -> Void) throws {
        for figure in try ServerSentEventBenchmark.run(deltas: max(1, deltas), rounds: max(1, rounds)) {
            let name = figure.name.padding(toLength: 36, withPad: " ", startingAt: 0)
            print(name + String(format: " %8.1f MB/s  %7.2f µs/delta  (%d bytes, %d deltas)", figure.megabytesPerSecond, figure.microsecondsPerDelta, figure.bytes, figure.deltas))
        }
    }

    /// The local model: prompt processing and generation tokens/s, time to first token, resident
    /// memory; with `llamaPython`, llama.cpp on the same file, prompt and threads side by side.
    public static func localModel(path: String, tokens: Int, threads: Int, llamaPython: String?, llamaScript: String, print: (String) -> Void) throws {
        let llamaModel: LlamaModel
        do {
            llamaModel = try LlamaModel(path: path)
        } catch {
            throw Failure("\(error) (fetch the built-in model with `medview model fetch`)")
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
            guard process.terminationStatus == 0 else { throw Failure("\(llamaScript) failed (\(process.terminationStatus))") }
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
