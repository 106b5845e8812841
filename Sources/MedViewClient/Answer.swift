/// The answer to one message: an `AsyncSequence` of ``AnswerEvent``s that ends after
/// ``AnswerEvent/ended(_:)`` or ``AnswerEvent/failed(_:)``.
///
/// Iterate it once (it is a single-consumer sequence), or call ``outcome()`` to wait for the end
/// and get the full text. The answer keeps coming in while nobody iterates; nothing is lost.
public struct Answer: AsyncSequence, Sendable {
    public typealias Element = AnswerEvent
    public typealias Failure = Never

    /// The idempotency id of the message (`chat.send` `id`); the same id is used for every retry.
    public let messageId: String
    let events: AsyncStream<AnswerEvent>

    init(messageId: String, events: AsyncStream<AnswerEvent>) {
        self.messageId = messageId
        self.events = events
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<AnswerEvent>.AsyncIterator

        public mutating func next() async -> AnswerEvent? {
            await base.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> AnswerEvent? {
            await base.next(isolation: actor)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: events.makeAsyncIterator())
    }

    /// Waits for the end of the answer (consuming the events) and returns how it ended, with the full text.
    public func outcome() async -> AnswerOutcome {
        for await event in self {
            switch event {
            case .ended(let end): return .ended(end)
            case .failed(let failure): return .failed(failure)
            default: continue
            }
        }
        return .failed(AnswerFailure(error: .stopped, partialText: ""))
    }
}
