// Compiled only once the `medview` target depends on MedViewAWS: until then this file is
// empty, so the executable builds as before. To wire it up, add "MedViewAWS" to the medview
// target's dependencies in Package.swift, add `BenchEventStream.self` to the `subcommands:` of
// `MedView` in MedView.swift, and delete the `#if` line below and the `#endif` at the end.
import ArgumentParser
import MedViewAWS
import MedViewModels

struct BenchEventStream: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-eventstream",
        abstract: "Benchmark the event-stream decoder on a ConverseStream-like stream.",
        discussion: """
            Encodes MESSAGES contentBlockDelta events (:event-type, :content-type and :message-type \
            headers, small JSON payloads), then decodes them fed in PIECE-SIZE-byte pieces, ITERATIONS \
            times, and prints the fastest pass: MB/s (10^6 bytes), messages/s and ns per message. \
            Build with -c release for figures worth comparing.
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
        let report = try EventStreamBenchmark.run(messages: messages, pieceSize: pieceSize, iterations: iterations)
        print(report.description)
    }
}

struct BenchBedrock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-bedrock",
        abstract: "Benchmark the per-delta overhead of the Bedrock provider (event-stream decode + JSON + mapping).",
        discussion: "Build with -c release for figures worth comparing."
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
        for api in [BedrockConfiguration.API.converse, .invoke] {
            print(try BedrockBenchmark.run(api: api, deltas: deltas, pieceSize: pieceSize, iterations: iterations).description)
        }
    }
}
