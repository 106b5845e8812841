import MedViewProtocol

/// The one place where domain outcomes become wire error codes and the words a patient reads.
///
/// Used by every edge (WebSocket, SSE, REST) for refused operations, and by ``TurnRunner`` for the
/// terminal event of an answer, which is the stream's own edge: it goes into the replay log and
/// is replayed byte for byte, so it is fixed when the answer ends.
public enum WireMapping {
    /// The wire code and message for a refused operation.
    public static func error(_ error: ChatError) -> (code: ErrorCode, message: String) {
        switch error {
        case .emptyMessage:
            (.emptyMessage, "The message is empty.")
        case .invalidText:
            (.invalidText, "The text contains control characters; send plain text.")
        case .rateLimited(.messageRate, let seconds):
            (.rateLimited, "Too many messages in a short time; try again in \(seconds) s.")
        case .rateLimited(.dailyOutputBudget, let seconds):
            (.rateLimited, "Today's answer budget is used up; try again in \(seconds) s.")
        case .messageTooLarge(let limit):
            (.messageTooLarge, "The message is longer than \(limit) characters.")
        case .idempotencyConflict:
            (.idempotencyConflict, "This message id was already used for a different message.")
        case .shuttingDown:
            (.shuttingDown, "The server is restarting; try again shortly.")
        case .tooManyStreams:
            (.tooManyStreams, "Too many answers are streaming at once; wait for one to finish.")
        case .overloaded:
            (.overloaded, "The service is very busy right now; try again in a moment.")
        case .conversationNotFound:
            (.notFound, "No such conversation.")
        case .streamNotFound:
            (.notFound, "No such stream.")
        case .streamNotReplayable:
            (.notFound, "This answer was interrupted by a server restart and cannot be replayed.")
        case .storedStreamUnreadable:
            (.internalError, "The stored stream could not be read.")
        case .storageUnavailable(.saveMessage):
            (.storageUnavailable, "The message could not be saved; try again.")
        case .storageUnavailable(.loadStream):
            (.storageUnavailable, "The stream could not be loaded; try again.")
        case .storageUnavailable(.deleteConversation):
            (.storageUnavailable, "The conversation could not be deleted; try again.")
        }
    }

    /// The terminal event of an answer whose ending the store refused: retryable, and the text the
    /// client received is kept and written when the store works again.
    public static func unsavedTerminal(streamId: String, seq: Int) -> ServerEvent {
        .error(ErrorEvent(code: .storageUnavailable, message: "The answer could not be saved; it is kept and saved when storage is back. Ask again with a new id to get a new answer.", retryable: true, streamId: streamId, seq: seq))
    }

    /// The terminal event ``StreamRecovery`` stores for an answer whose server process stopped
    /// without ending it: retryable, after the events that process had persisted.
    public static func interruptedTerminal(streamId: String, seq: Int) -> ServerEvent {
        .error(ErrorEvent(code: .interrupted, message: "The server answering this stopped unexpectedly; the part shown is what was sent. Ask again for a full answer.", retryable: true, streamId: streamId, seq: seq))
    }

    /// The stored status of an answer and its terminal event (built from its `seq`).
    public static func terminal(for outcome: TurnOutcome, streamId: String) -> (MessageStatus, @Sendable (Int) -> ServerEvent) {
        switch outcome {
        case .completed(let stop, let usage):
            let reason: FinishReason = stop == .maxTokens ? .length : (stop == .contentFiltered ? .safety : .complete)
            return (.complete, { .streamEnd(StreamEnd(streamId: streamId, seq: $0, finishReason: reason, usage: usage)) })
        case .cancelled(let usage):
            return (.cancelled, { .streamEnd(StreamEnd(streamId: streamId, seq: $0, finishReason: .cancelled, usage: usage)) })
        case .interruptedByShutdown:
            return (.failed, { .error(ErrorEvent(code: .shuttingDown, message: "The server restarted during this answer; ask again.", streamId: streamId, seq: $0)) })
        case .failed(let error, _):
            let message = switch error.kind {
            case .throttled: "The model is busy right now; try again in a moment."
            case .unavailable: "The model is unavailable right now; try again in a moment."
            case .invalidRequest, .failed: "The model could not finish this answer."
            }
            return (.failed, { .error(ErrorEvent(code: error.errorCode, message: message, retryable: error.retryable, streamId: streamId, seq: $0)) })
        }
    }
}

/// How one answer's model run ended.
public enum TurnOutcome: Sendable {
    /// The model finished (or the output guard stopped it, `contentFiltered`).
    case completed(ModelStopReason?, Usage?)
    /// The patient cancelled it.
    case cancelled(Usage?)
    /// It was cancelled because the server is shutting down.
    case interruptedByShutdown
    /// The model failed.
    case failed(ModelError, Usage?)
}

extension ChatError {
    /// The wire error code (``WireMapping/error(_:)``).
    public var code: ErrorCode { WireMapping.error(self).code }
    /// The message a patient's client shows (``WireMapping/error(_:)``); never user text.
    public var message: String { WireMapping.error(self).message }
    /// Whole seconds to wait before retrying, for errors that know it (`rate_limited`).
    public var retryAfter: Int? {
        if case .rateLimited(_, let seconds) = self { return seconds }
        return nil
    }
}
