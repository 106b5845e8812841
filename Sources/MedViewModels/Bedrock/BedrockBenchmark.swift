import Foundation
import MedViewAWS
import MedViewCore

/// Measures what the Bedrock provider adds per delta: event-stream decoding, JSON decoding of the
/// payload and mapping to ``ModelEvent`` (``BedrockStreamMapper``), on a ConverseStream-shaped
/// stream fed in fixed-size pieces, as the HTTP client hands it over.
public enum BedrockBenchmark {
    /// The figures of one run.
    public struct Report: Sendable, CustomStringConvertible {
        /// The operation whose stream was measured.
        public var api: BedrockConfiguration.API
        /// Text deltas in the stream.
        public var deltas: Int
        /// The size of the stream.
        public var bytes: Int
        /// Best pass, whole path (decode + JSON + mapping), per delta.
        public var microsecondsPerDelta: Double
        /// Best pass, event-stream decoding only, per delta.
        public var decodeMicrosecondsPerDelta: Double

        /// The figures on one line.
        public var description: String {
            "bedrock \(api.rawValue) stream: \(deltas) deltas, \(bytes) bytes; per delta "
                + String(format: "%.3f", microsecondsPerDelta) + " µs (decode + JSON + mapping), of which event-stream decode "
                + String(format: "%.3f", decodeMicrosecondsPerDelta) + " µs; " + String(format: "%.0f", 1e6 / microsecondsPerDelta) + " deltas/s"
        }
    }

    /// The stream: `messageStart`, `deltas` × `contentBlockDelta` (about 6 characters of text and
    /// Bedrock's `p` padding each) or the InvokeModel `chunk` equivalent, then the end events.
    public static func makeStream(api: BedrockConfiguration.API, deltas: Int) throws -> [UInt8] {
        let encoder = EventStreamEncoder()
        var bytes: [UInt8] = []
        func event(_ type: String, _ json: String) throws {
            try encoder.encode(EventStreamMessage(headers: [
                .init(name: ":event-type", value: .string(type)),
                .init(name: ":content-type", value: .string("application/json")),
                .init(name: ":message-type", value: .string("event")),
            ], payload: Array(json.utf8)), into: &bytes)
        }
        func chunk(_ json: String) throws {
            try event("chunk", "{\"bytes\":\"\(Data(json.utf8).base64EncodedString())\",\"p\":\"abcdefghij\"}")
        }
        let words = ["Drink ", "water ", "often, ", "rest, ", "and ", "call ", "your ", "nurse. "]
        switch api {
        case .converse:
            try event("messageStart", "{\"p\":\"abcdefghijklmnopqrstuvwxyzABCD\",\"role\":\"assistant\"}")
            for i in 0..<deltas {
                try event("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"\(words[i % words.count])\"},\"p\":\"abcdefghijklmnopqrstuvwxyzABCDEFGH\"}")
            }
            try event("contentBlockStop", "{\"contentBlockIndex\":0,\"p\":\"abcdefghij\"}")
            try event("messageStop", "{\"p\":\"abcdefgh\",\"stopReason\":\"end_turn\"}")
            try event("metadata", "{\"metrics\":{\"latencyMs\":812},\"usage\":{\"inputTokens\":120,\"outputTokens\":\(deltas),\"totalTokens\":\(120 + deltas)}}")
        case .invoke:
            try chunk("{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":120,\"output_tokens\":1}}}")
            for i in 0..<deltas {
                try chunk("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\(words[i % words.count])\"}}")
            }
            try chunk("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":\(deltas)}}")
            try chunk("{\"type\":\"message_stop\"}")
        }
        return bytes
    }

    /// Runs `iterations` passes over a stream of `deltas` deltas fed in `pieceSize`-byte pieces.
    public static func run(api: BedrockConfiguration.API = .converse, deltas: Int = 50_000, pieceSize: Int = 1024, iterations: Int = 5) throws -> Report {
        let stream = try makeStream(api: api, deltas: deltas)
        var bestFull = Double.infinity
        var bestDecode = Double.infinity
        for _ in 0..<iterations {
            // Decode only.
            var start = DispatchTime.now().uptimeNanoseconds
            var decoder = EventStreamDecoder()
            var messages = 0
            var offset = 0
            while offset < stream.count {
                let end = min(offset + pieceSize, stream.count)
                try decoder.append(stream[offset..<end])
                while try decoder.next() != nil { messages += 1 }
                offset = end
            }
            bestDecode = min(bestDecode, Double(DispatchTime.now().uptimeNanoseconds - start))
            // Decode + JSON + mapping.
            start = DispatchTime.now().uptimeNanoseconds
            decoder = EventStreamDecoder()
            var mapper = BedrockStreamMapper(api: api)
            var seen = 0
            offset = 0
            while offset < stream.count {
                let end = min(offset + pieceSize, stream.count)
                try decoder.append(stream[offset..<end])
                while let message = try decoder.next() {
                    try mapper.map(message) { event in if case .delta = event { seen += 1 } }
                }
                offset = end
            }
            bestFull = min(bestFull, Double(DispatchTime.now().uptimeNanoseconds - start))
            guard seen == deltas, mapper.stopped, messages > deltas else {
                throw ModelError(kind: .failed, retryable: false, detail: "benchmark stream mapped to \(seen) deltas, expected \(deltas)")
            }
        }
        return Report(api: api, deltas: deltas, bytes: stream.count, microsecondsPerDelta: bestFull / 1000 / Double(deltas), decodeMicrosecondsPerDelta: bestDecode / 1000 / Double(deltas))
    }
}
