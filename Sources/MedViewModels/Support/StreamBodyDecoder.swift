import MedViewCore
import NIOCore

/// Turns the body of a streaming model response, piece by piece as it arrives, into ``ModelEvent``s.
///
/// One decoder reads one response: ``StreamingHTTPTransport`` makes a fresh one for each attempt.
/// ``ServerSentEventBody`` reads `text/event-stream` (Anthropic, OpenAI-compatible);
/// ``EventStreamBody`` reads AWS `application/vnd.amazon.eventstream` (Bedrock).
protocol StreamBodyDecoder: Sendable {
    /// Whether a response with this status and (lower-cased) content type carries the stream; any
    /// other response is an error the provider's mapping reads.
    func carriesStream(status: Int, contentType: String) -> Bool
    /// Decodes the next piece of the body, calling `emit` for each event it completes.
    mutating func decode(_ piece: ByteBufferView, emit: (ModelEvent) -> Void) throws(ModelError)
    /// Whether the answer is complete (the rest of the body need not be read).
    var isComplete: Bool { get }
    /// Called when the body ended: emits the last events, or throws when the answer was cut short.
    mutating func finish(emit: (ModelEvent) -> Void) throws(ModelError)
}
