import ArgumentParser
import Foundation
import MedViewModels

/// `medview bench-sse`: what the Anthropic and OpenAI-compatible providers cost per byte and per delta.
struct BenchSSE: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sse",
        abstract: "Time the SSE parser (MB/s) and the per-delta cost of the Anthropic and OpenAI-compatible stream decoders.",
        discussion: "No network: realistic streams are built in memory and fed in 4 KiB pieces. Build with `swift build -c release --product medview` for figures worth comparing."
    )

    @Option(help: "Text deltas per stream.")
    var deltas = 50_000
    @Option(help: "Rounds; the best one is printed.")
    var rounds = 5

    func run() async throws {
        for figure in try ServerSentEventBenchmark.run(deltas: max(1, deltas), rounds: max(1, rounds)) {
            let name = figure.name.padding(toLength: 36, withPad: " ", startingAt: 0)
            print(name + String(format: " %8.1f MB/s  %7.2f µs/delta  (%d bytes, %d deltas)", figure.megabytesPerSecond, figure.microsecondsPerDelta, figure.bytes, figure.deltas))
        }
    }
}
