import Foundation
import MedViewCore
import NIOCore

/// Measures what the SSE providers cost per byte and per delta, without a network.
///
/// Builds realistic Anthropic and OpenAI-compatible streams in memory (one short text delta per
/// event, as the APIs send them), feeds them in 4 KiB pieces, and times the SSE parser alone and
/// the parser plus each provider's decoder, as a model response is read (`ServerSentEventBody`:
/// each event handed to the decoder where the parser holds it).
public enum ServerSentEventBenchmark {
    /// One measurement.
    public struct Figure: Sendable {
        /// What was measured.
        public var name: String
        /// The size of the stream.
        public var bytes: Int
        /// Text deltas in the stream.
        public var deltas: Int
        /// The best round, in seconds.
        public var seconds: Double

        /// Megabytes (10^6 bytes) per second.
        public var megabytesPerSecond: Double { Double(bytes) / 1e6 / seconds }
        /// Microseconds per delta event.
        public var microsecondsPerDelta: Double { seconds * 1e6 / Double(max(deltas, 1)) }
    }

    /// Runs every measurement with `deltas` text deltas per stream, best of `rounds`.
    public static func run(deltas: Int = 50_000, rounds: Int = 5) throws -> [Figure] {
        let pieces = ["Drink ", "plenty ", "of water, ", "rest, ", "and call ", "your doctor ", "if it ", "gets worse. ", "💧 ", "naïve "]
        var anthropic = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
        var openAI = ""
        for index in 0..<deltas {
            let text = pieces[index % pieces.count]
            anthropic += "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\(text)\"}}\n\n"
            openAI += "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(text)\"},\"finish_reason\":null}]}\n\n"
        }
        anthropic += "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":\(deltas)}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        openAI += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
        let anthropicBytes = Array(anthropic.utf8)
        let openAIBytes = Array(openAI.utf8)

        return [
            try measureParser("SSE parser only (Anthropic stream)", anthropicBytes, deltas: deltas, rounds: rounds),
            try measure("Anthropic: parse + decode", anthropicBytes, deltas: deltas, rounds: rounds, decoder: AnthropicStreamDecoder()),
            try measure("OpenAI-compatible: parse + decode", openAIBytes, deltas: deltas, rounds: rounds, decoder: OpenAIStreamDecoder()),
        ]
    }

    /// The parser alone, handing each event over in place as the providers read it.
    private static func measureParser(_ name: String, _ bytes: [UInt8], deltas: Int, rounds: Int) throws -> Figure {
        var best = Double.infinity
        var sink = 0
        for _ in 0..<max(1, rounds) {
            let clock = ContinuousClock()
            let start = clock.now
            var parser = ServerSentEventParser()
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + 4096, bytes.count)
                try parser.feed(bytes[offset..<end]) { event in
                    sink &+= event.bytes.count
                    return true
                }
                offset = end
            }
            best = min(best, seconds(clock.now - start))
        }
        precondition(sink >= 0)
        return Figure(name: name, bytes: bytes.count, deltas: deltas, seconds: best)
    }

    private static func measure(_ name: String, _ bytes: [UInt8], deltas: Int, rounds: Int, decoder initial: some ServerSentEventDecoder) throws -> Figure {
        var best = Double.infinity
        for _ in 0..<max(1, rounds) {
            let clock = ContinuousClock()
            let start = clock.now
            // As the model transports read a response: ``ServerSentEventBody``.
            var body = ServerSentEventBody(provider: name, decoder: initial)
            var seen = 0
            var offset = 0
            let buffer = ByteBuffer(bytes: bytes)
            while offset < bytes.count {
                let end = min(offset + 4096, bytes.count)
                try body.decode(buffer.getSlice(at: offset, length: end - offset)!.readableBytesView) { modelEvent in
                    if case .delta = modelEvent { seen += 1 }
                }
                offset = end
            }
            try body.finish { _ in }
            best = min(best, seconds(clock.now - start))
            guard seen == deltas, body.isComplete else {
                throw ModelError(kind: .failed, retryable: false, detail: "benchmark: \(name) decoded \(seen) of \(deltas) deltas")
            }
        }
        return Figure(name: name, bytes: bytes.count, deltas: deltas, seconds: best)
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
