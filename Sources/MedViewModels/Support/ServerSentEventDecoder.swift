import MedViewCore

/// Turns the Server-Sent Events of one provider's streaming API into ``ModelEvent``s.
protocol ServerSentEventDecoder: Sendable {
    /// The model events carried by one stream event.
    mutating func decode(_ event: ServerSentEvent) throws(ModelError) -> [ModelEvent]
    /// The model events carried by one stream event as the parser hands it over (borrowed, valid
    /// only during the call), each passed to `emit`: the same events ``decode(_:)`` returns.
    mutating func decode(_ event: ServerSentEventView, emit: (ModelEvent) -> Void) throws(ModelError)
    /// Whether the answer is complete (nothing more needs to be read).
    var isComplete: Bool { get }
    /// Called when the body ended; returns the last events or throws when the answer was cut short.
    mutating func finish() throws(ModelError) -> [ModelEvent]
}

extension ServerSentEventDecoder {
    /// Copies the event out and decodes it.
    mutating func decode(_ event: ServerSentEventView, emit: (ModelEvent) -> Void) throws(ModelError) {
        for modelEvent in try decode(event.event) { emit(modelEvent) }
    }
}
