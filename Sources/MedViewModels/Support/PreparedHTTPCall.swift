import MedViewCore
import Synchronization

/// A model call made ready by ``StreamingHTTPTransport/prepare(_:)`` while the patient's message is
/// stored: signed, its connection taken, its response's reader waiting (``HeldEvents``), and not
/// a byte written until ``send()``.
///
/// Its first attempt is the held request; a retry (a retryable failure before the first delta)
/// is a new request (``StreamingHTTPTransport/answer(_:into:)``).
struct PreparedHTTPCall<Body: StreamBodyDecoder>: PreparedModelCall {
    let transport: StreamingHTTPTransport<Body>
    /// The request, unsigned, for retries.
    let request: StreamingHTTPRequest
    let exchange: ModelExchange
    let delegate: ModelResponseDelegate<Body>
    let events: HeldEvents
    let started: ContinuousClock.Instant

    /// Sends the request; its silence limits start as it leaves.
    func send() {
        exchange.release { [delegate, exchange] in delegate.arm(exchange) }
    }

    func discard() {
        exchange.cancel()
    }

    func answer(into sink: @escaping ModelEventSink) async throws {
        try await transport.answer(self, into: sink)
    }
}

/// A prepared call's response events, held until the answer's reader attaches: the request may be
/// sent (from the store's writer, the moment the message is stored) before the reader is ready.
final class HeldEvents: Sendable {
    private struct State {
        var sink: ModelEventSink?
        var held: [ModelEvent] = []
    }

    private let state = Mutex(State())

    /// Hands `event` to the attached reader, or holds it until one attaches.
    func yield(_ event: ModelEvent) -> Bool {
        state.withLock { state in
            guard let sink = state.sink else {
                state.held.append(event)
                return true
            }
            return sink(event)
        }
    }

    /// Attaches `sink` and hands it what was held, in order; once `sink` declines an event, every
    /// later one is declined.
    func attach(_ sink: @escaping ModelEventSink) {
        state.withLock { state in
            var accepting = true
            for event in state.held where accepting {
                accepting = sink(event)
            }
            state.held = []
            state.sink = accepting ? sink : { _ in false }
        }
    }
}
