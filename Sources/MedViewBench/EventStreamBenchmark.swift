import Foundation
import MedViewAWS

/// A decoder throughput benchmark on a ConverseStream-like stream, for `medview bench eventstream`.
///
/// The stream is `messages` `contentBlockDelta` events (`:event-type`, `:content-type`,
/// `:message-type` headers; a small JSON payload with a `p` padding field, as Bedrock sends),
/// encoded once, then decoded `iterations` times fed in `pieceSize`-byte pieces, the way bytes
/// arrive from a socket. Figures are from the fastest iteration; MB means 10⁶ bytes.
public enum EventStreamBenchmark {
    /// What one run measured.
    public struct Report: Sendable, Hashable, CustomStringConvertible {
        /// Messages in the stream.
        public var messages: Int
        /// Size of the encoded stream, in bytes.
        public var bytes: Int
        /// Bytes fed to the decoder per `append`.
        public var pieceSize: Int
        /// Decode passes timed.
        public var iterations: Int
        /// Seconds to encode the stream once.
        public var encodeSeconds: Double
        /// Seconds of the fastest decode pass.
        public var bestDecodeSeconds: Double
        /// Seconds of the median decode pass.
        public var medianDecodeSeconds: Double

        /// Decode throughput of the fastest pass, in MB (10⁶ bytes) per second.
        public var decodeMBPerSecond: Double { Double(bytes) / bestDecodeSeconds / 1e6 }
        /// Messages decoded per second in the fastest pass.
        public var messagesPerSecond: Double { Double(messages) / bestDecodeSeconds }
        /// Nanoseconds per decoded message in the fastest pass.
        public var nanosecondsPerMessage: Double { bestDecodeSeconds * 1e9 / Double(messages) }
        /// Encode throughput, in MB per second.
        public var encodeMBPerSecond: Double { Double(bytes) / encodeSeconds / 1e6 }

        /// A few lines for a terminal.
        public var description: String {
            func f(_ value: Double, _ digits: Int = 1) -> String {
                let scale = Double([1, 10, 100, 1000][min(digits, 3)])
                return String((value * scale).rounded() / scale)
            }
            return """
                event-stream decode: \(messages) messages, \(bytes) bytes (\(f(Double(bytes) / Double(messages))) B/message), \
                fed in \(pieceSize)-byte pieces, best of \(iterations)
                  decode: \(f(decodeMBPerSecond)) MB/s, \(f(messagesPerSecond / 1e6, 3)) M messages/s, \(f(nanosecondsPerMessage)) ns/message \
                (median pass \(f(medianDecodeSeconds * 1e3, 2)) ms, best \(f(bestDecodeSeconds * 1e3, 2)) ms)
                  encode: \(f(encodeMBPerSecond)) MB/s (\(f(encodeSeconds * 1e3, 2)) ms)
                """
        }
    }

    /// The benchmark's messages: ConverseStream `contentBlockDelta` events.
    public static func makeMessages(_ count: Int) -> [EventStreamMessage] {
        let words = ["The", "patient", "should", "drink", "water", "regularly", "and", "rest", "when", "tired", "."]
        let padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        var messages: [EventStreamMessage] = []
        messages.reserveCapacity(count)
        for index in 0..<count {
            let text = (0..<(1 + index % 3)).map { words[(index + $0) % words.count] }.joined(separator: " ")
            let pad = String(padding.prefix(4 + index % 20))
            let json = #"{"contentBlockIndex":0,"delta":{"text":"\#(text) "},"p":"\#(pad)"}"#
            messages.append(EventStreamMessage(
                headers: [
                    EventStreamHeader(name: ":event-type", value: .string("contentBlockDelta")),
                    EventStreamHeader(name: ":content-type", value: .string("application/json")),
                    EventStreamHeader(name: ":message-type", value: .string("event")),
                ],
                payload: Array(json.utf8)
            ))
        }
        return messages
    }

    /// Encodes `messages` events once, then times `iterations` decode passes.
    ///
    /// - Throws: an ``EventStreamError`` if the round trip fails (it should not).
    public static func run(messages: Int = 100_000, pieceSize: Int = 8192, iterations: Int = 7) throws(EventStreamError) -> Report {
        let count = max(1, messages)
        let piece = max(1, pieceSize)
        let source = makeMessages(count)
        let clock = ContinuousClock()
        let encoder = EventStreamEncoder()
        var stream: [UInt8] = []
        let encodeStart = clock.now
        for message in source {
            try encoder.encode(message, into: &stream)
        }
        let encodeTime = clock.now - encodeStart
        var times: [Double] = []
        for _ in 0..<max(1, iterations) {
            let start = clock.now
            var decoder = EventStreamDecoder()
            var decoded = 0
            var offset = 0
            while offset < stream.count {
                let end = min(offset + piece, stream.count)
                try decoder.append(stream[offset..<end])
                offset = end
                while let message = try decoder.next() {
                    decoded &+= message.payload.count > 0 ? 1 : 0
                }
            }
            try decoder.finish()
            times.append(seconds(clock.now - start))
            precondition(decoded == count, "benchmark decoded \(decoded) of \(count) messages")
        }
        times.sort()
        return Report(
            messages: count, bytes: stream.count, pieceSize: piece, iterations: times.count,
            encodeSeconds: seconds(encodeTime), bestDecodeSeconds: times[0], medianDecodeSeconds: times[times.count / 2]
        )
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
