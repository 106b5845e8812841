import MedViewProtocol

/// One thing that happened to an answer, in the order it happened. Every event reaches the app
/// exactly once, whatever the network did: repeats after a resume or a re-sent message are dropped.
public enum AnswerEvent: Sendable, Equatable {
    /// The server stored the question and the answer starts (`stream.start`).
    case started(AnswerStart)
    /// The next piece of the answer text; append it exactly as it is.
    case text(String)
    /// Emergency guidance (`safety.alert`): show it prominently, above the answer, with its actions.
    case safetyAlert(SafetyAlert)
    /// A non-emergency safety notice (`safety.warning`), such as a medication interaction.
    case safetyWarning(SafetyWarning)
    /// The answer ended normally (finished, cut at the length limit, cancelled, or stopped for safety).
    case ended(AnswerEnd)
    /// The answer could not be given or failed part way; the text received so far is kept.
    case failed(AnswerFailure)

    /// Whether nothing follows this event.
    public var isTerminal: Bool {
        switch self {
        case .ended, .failed: true
        default: false
        }
    }
}

/// What `stream.start` says about an answer.
public struct AnswerStart: Sendable, Equatable {
    /// The server's id of the answer's stream (for resume and cancel).
    public var streamId: String
    /// The conversation the question went into (new or existing).
    public var conversationId: String
    /// The stored question.
    public var userMessageId: String
    /// The stored answer.
    public var messageId: String
    /// Which model answers; label the answer when `model.demo` is true (not medical-grade).
    public var model: ModelDescriptor
}

/// How an answer ended normally.
public struct AnswerEnd: Sendable, Equatable {
    public var finishReason: FinishReason
    public var usage: Usage?
    /// The whole answer text: every chunk joined in order.
    public var text: String
}

/// Why an answer failed, and the text that arrived before.
public struct AnswerFailure: Sendable, Equatable {
    public var error: MedViewClientError
    /// The text received before the failure (possibly empty).
    public var partialText: String
}

/// How an answer turned out, once it is over.
public enum AnswerOutcome: Sendable, Equatable {
    case ended(AnswerEnd)
    case failed(AnswerFailure)

    /// The answer text (complete, or partial for a failure).
    public var text: String {
        switch self {
        case .ended(let end): end.text
        case .failed(let failure): failure.partialText
        }
    }
}
