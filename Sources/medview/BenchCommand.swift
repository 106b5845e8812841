import ArgumentParser
import Foundation
import MedViewBench
import MedViewLocalModel

/// `medview bench <target>`: every benchmark of the project, one command group. The code lives
/// in MedViewBench; these commands only parse options. Build with `swift build -c release
/// --product medview` for figures worth comparing.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: the live server (default), the event-stream decoder, the Bedrock and SSE providers, the local model, the safety pass.",
        subcommands: [Server.self, Store.self, EventStream.self, Bedrock.self, SSE.self, LocalModel.self, Safety.self, Lambda.self],
        defaultSubcommand: Server.self
    )

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmark a live server: time to first chunk, chunk latency, throughput, memory per idle connection.",
            discussion: "Starts its own `medview serve` (this binary) on a free loopback port with the scripted model at zero delay."
        )

        @Option(help: "Concurrent streams in the latency phase.")
        var streams: Int = 500
        @Option(help: "Rounds of concurrent streams (after one warm-up round).")
        var rounds: Int = 5
        @Option(help: "Idle connection counts to measure memory at, comma-separated; empty skips the phase.")
        var connections: String = "1000,5000"
        @Option(name: .customLong("metrics-overhead"), help: "Instead: the cost of metrics, as throughput with metrics on (Prometheus + EMF) and off, in this many alternating pairs of servers.")
        var metricsOverhead: Int?

        func run() async throws {
            let steps = connections.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
            let resolved = FileManager.default.isExecutableFile(atPath: executable) ? executable : (Bundle.main.executablePath ?? executable)
            if let pairs = metricsOverhead {
                try await Benchmark(executable: resolved, concurrentStreams: streams, rounds: rounds, idleConnectionSteps: [], print: printLine).metricsOverhead(pairs: pairs)
                return
            }
            try await Benchmark(executable: resolved, concurrentStreams: streams, rounds: rounds, idleConnectionSteps: steps, print: printLine).run()
        }
    }

    struct Lambda: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The serverless shape: cold start, first chunk, per-invocation overhead, binary size and memory of `bootstrap`.",
            discussion: "Runs the Lambda stand-in in-process and the `bootstrap` executable as a child process on PostgreSQL, with the scripted model; a WebSocket client speaks the protocol through the stand-in's API Gateway."
        )

        @Option(name: .customLong("database-url"), help: "The PostgreSQL database the function uses (required). [env: MEDVIEW_DATABASE_URL]")
        var databaseUrl: String?
        @Option(help: "The bootstrap executable (default: next to this medview).")
        var bootstrap: String?
        @Option(help: "Answers to time (the first is the environment's first).")
        var answers: Int = 20
        @Option(help: "Pings to time.")
        var pings: Int = 200
        @Option(name: .customLong("cold-starts"), help: "Fresh processes to time from start to their first next.")
        var coldStarts: Int = 5

        func run() async throws {
            guard let url = databaseUrl ?? ProcessInfo.processInfo.environment["MEDVIEW_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) else {
                throw ValidationError("the function keeps its store in PostgreSQL: pass --database-url or set MEDVIEW_DATABASE_URL")
            }
            let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
            let path = bootstrap ?? executable.deletingLastPathComponent().appendingPathComponent("bootstrap").path
            try await LambdaBenchmark(bootstrap: path, databaseURL: url, answers: answers, pings: pings, coldStarts: coldStarts, print: printLine).run()
        }
    }

    struct Store: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The cost of the durable replay log and of encryption, on SQLite and PostgreSQL.",
            discussion: "Runs the server's application in-process (scripted model at zero delay) with each of: nothing, the durable log, encryption, both; prints streams per second and the server-added time to first chunk at 1 and N concurrent answers, and the cost of both as a ratio."
        )

        @Option(name: .customLong("database-url"), help: "A PostgreSQL database to measure too (a schema is created and dropped). [env: MEDVIEW_DATABASE_URL]")
        var databaseUrl: String?
        @Option(help: "Answers one at a time, per configuration.")
        var sequential: Int = 300
        @Option(help: "Answers at once in the concurrent phase.")
        var concurrent: Int = 200
        @Option(help: "Rounds of the concurrent phase.")
        var rounds: Int = 5
        @Option(help: "Runs of every configuration (alternating); the best is printed.")
        var repeats: Int = 2
        @Option(name: .customLong("conversation-length"), help: "Messages in one conversation, to compare the first chunk of its first and last messages; 0 skips it.")
        var conversationLength: Int = 500

        func run() async throws {
            let url = databaseUrl ?? ProcessInfo.processInfo.environment["MEDVIEW_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
            try await StoreBenchmark(databaseURL: url, sequential: sequential, concurrent: concurrent, rounds: rounds, repeats: repeats, conversationLength: conversationLength, print: printLine).run()
        }
    }

    struct EventStream: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eventstream",
            abstract: "The event-stream decoder on a ConverseStream-like stream.",
            discussion: """
                Encodes MESSAGES contentBlockDelta events (:event-type, :content-type and :message-type \
                headers, small JSON payloads), then decodes them fed in PIECE-SIZE-byte pieces, ITERATIONS \
                times, and prints the fastest pass: MB/s (10^6 bytes), messages/s and ns per message.
                """
        )

        @Option(help: "Messages in the stream.")
        var messages: Int = 100_000
        @Option(name: .customLong("piece-size"), help: "Bytes fed to the decoder at a time.")
        var pieceSize: Int = 8192
        @Option(help: "Decode passes; the fastest is reported.")
        var iterations: Int = 7

        func validate() throws {
            guard messages > 0, pieceSize > 0, iterations > 0 else {
                throw ValidationError("--messages, --piece-size and --iterations must be positive.")
            }
        }

        func run() async throws {
            try ComponentBenchmarks.eventStream(messages: messages, pieceSize: pieceSize, iterations: iterations, print: printLine)
        }
    }

    struct Bedrock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The per-delta overhead of the Bedrock provider (event-stream decode + JSON + mapping)."
        )

        @Option(help: "Deltas in the stream.")
        var deltas: Int = 50_000
        @Option(name: .customLong("piece-size"), help: "Bytes fed to the decoder at a time.")
        var pieceSize: Int = 1024
        @Option(help: "Passes; the fastest is reported.")
        var iterations: Int = 5

        func validate() throws {
            guard deltas > 0, pieceSize > 0, iterations > 0 else {
                throw ValidationError("--deltas, --piece-size and --iterations must be positive.")
            }
        }

        func run() async throws {
            try ComponentBenchmarks.bedrock(deltas: deltas, pieceSize: pieceSize, iterations: iterations, print: printLine)
        }
    }

    struct SSE: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sse",
            abstract: "The SSE parser (MB/s) and the per-delta cost of the Anthropic and OpenAI-compatible stream decoders.",
            discussion: "No network: realistic streams are built in memory and fed in 4 KiB pieces."
        )

        @Option(help: "Text deltas per stream.")
        var deltas = 50_000
        @Option(help: "Rounds; the best one is printed.")
        var rounds = 5

        func run() async throws {
            try ComponentBenchmarks.serverSentEvents(deltas: deltas, rounds: rounds, print: printLine)
        }
    }

    struct LocalModel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "local-model",
            abstract: "The local model: prompt processing and generation tokens/s, time to first token, resident memory.",
            discussion: "With --llama-python, runs scripts/llama_bench.py with that interpreter (which needs llama-cpp-python) on the same file, prompt and thread count, and prints both side by side."
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
            do {
                try ComponentBenchmarks.localModel(path: model ?? ModelFetcher(dataDirectory: dataDir).modelPath, tokens: tokens, threads: threads, llamaPython: llamaPython, llamaScript: llamaScript, print: printLine)
            } catch let failure as ComponentBenchmarks.Failure {
                throw ValidationError(failure.description)
            }
        }
    }

    struct Safety: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The safety pass: the output guard per 256-character chunk and the checks per message."
        )

        @Option(help: "Chunks to scan.")
        var chunks = 20_000
        @Option(parsing: .upToNextOption, help: "Also time every message of these sets (JSON Lines with a `text` or `messages` field, e.g. the evaluation sets): least of 5 runs per message, then p50, p99 and the slowest.")
        var messages: [String] = []

        func run() async throws {
            try ComponentBenchmarks.safety(chunks: chunks, print: printLine)
            if !messages.isEmpty {
                var texts: [String] = []
                for path in messages {
                    let data = try Data(contentsOf: URL(fileURLWithPath: path))
                    for line in data.split(separator: UInt8(ascii: "\n")) {
                        guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                        if let text = object["text"] as? String { texts.append(text) }
                        if let list = object["messages"] as? [String] { texts += list }
                    }
                }
                try ComponentBenchmarks.safetyPerMessage(texts, print: printLine)
            }
        }
    }
}
