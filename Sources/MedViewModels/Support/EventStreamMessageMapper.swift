import MedViewAWS
import MedViewCore

/// Turns the messages of an AWS event stream into ``ModelEvent``s (``BedrockStreamMapper``).
protocol EventStreamMessageMapper: Sendable {
    /// Maps one message, calling `emit` for each event it yields; exception messages throw.
    mutating func map(_ message: EventStreamMessage, emit: (ModelEvent) -> Void) throws(ModelError)
    /// Whether a stop reason was seen (a stream that ends without one was cut short).
    var stopped: Bool { get }
}
