import MedViewCore

/// Turns the Server-Sent Events of one provider's streaming API into ``ModelEvent``s.
protocol ServerSentEventDecoder: Sendable {
    /// The model events carried by one stream event.
    mutating func decode(_ event: ServerSentEvent) throws(ModelError) -> [ModelEvent]
    /// Whether the answer is complete (nothing more needs to be read).
    var isComplete: Bool { get }
    /// Called when the body ended; returns the last events or throws when the answer was cut short.
    mutating func finish() throws(ModelError) -> [ModelEvent]
}
