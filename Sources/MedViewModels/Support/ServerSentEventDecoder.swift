import MedViewCore

/// Turns the Server-Sent Events of one provider's streaming API into ``ModelEvent``s.
protocol ServerSentEventDecoder: Sendable {
    /// The model events carried by one stream event as the parser hands it over (borrowed, valid
    /// only during the call), each passed to `emit`.
    mutating func decode(_ event: ServerSentEventView, emit: (ModelEvent) -> Void) throws(ModelError)
    /// Whether the answer is complete (nothing more needs to be read).
    var isComplete: Bool { get }
    /// Called when the body ended; returns the last events or throws when the answer was cut short.
    mutating func finish() throws(ModelError) -> [ModelEvent]
}

extension ServerSentEventDecoder {
    /// The model events carried by one stream event held in memory: decoded as the parser's
    /// events are.
    mutating func decode(_ event: ServerSentEvent) throws(ModelError) -> [ModelEvent] {
        var events: [ModelEvent] = []
        var failure: ModelError?
        var type = event.type
        type.withUTF8 { typeBytes in
            event.bytes.withUnsafeBufferPointer { bytes in
                do throws(ModelError) {
                    try decode(ServerSentEventView(typeBytes: typeBytes, bytes: bytes, lastEventId: event.lastEventId)) { events.append($0) }
                } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        return events
    }
}
