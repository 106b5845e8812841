// Compiled only once the `medview` target depends on MedViewAWS: until then this file is
// empty, so the executable builds as before. To wire it up, add "MedViewAWS" to the medview
// target's dependencies in Package.swift, add `BenchEventStream.self` to the `subcommands:` of
// `MedView` in MedView.swift, and delete the `#if` line below and the `#endif` at the end.
import ArgumentParser
import MedViewAWS

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
