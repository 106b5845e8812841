import Foundation

/// An event the server sends: one JSON object with a `type`.
///
/// Events of a response (everything but `ack` and connection-level `error`) carry the
/// `streamId` and a gap-free `seq` starting at 1 with `stream.start`. A stream ends with
/// exactly one terminal event: `stream.end`, or an `error` that carries a `seq`.
public enum ServerEvent: Sendable, Equatable {
    case ack(Ack)
    case streamStart(StreamStart)
    case streamChunk(StreamChunk)
    case safetyAlert(SafetyAlert)
    case safetyWarning(SafetyWarning)
    case streamEnd(StreamEnd)
    case error(ErrorEvent)

    /// The wire `type` of this event.
    public var wireType: String {
        switch self {
        case .ack: "ack"
        case .streamStart: "stream.start"
        case .streamChunk: "stream.chunk"
        case .safetyAlert: "safety.alert"
        case .safetyWarning: "safety.warning"
        case .streamEnd: "stream.end"
        case .error: "error"
        }
    }

    /// The stream this event belongs to, if any.
    public var streamId: String? {
        switch self {
        case .ack(let e): e.streamId
        case .streamStart(let e): e.streamId
        case .streamChunk(let e): e.streamId
        case .safetyAlert(let e): e.streamId
        case .safetyWarning(let e): e.streamId
        case .streamEnd(let e): e.streamId
        case .error(let e): e.streamId
        }
    }

    /// The sequence number within the stream, if this event is part of one.
    public var seq: Int? {
        switch self {
        case .ack: nil
        case .streamStart(let e): e.seq
        case .streamChunk(let e): e.seq
        case .safetyAlert(let e): e.seq
        case .safetyWarning(let e): e.seq
        case .streamEnd(let e): e.seq
        case .error(let e): e.seq
        }
    }

    /// Whether this event ends its stream.
    public var isTerminal: Bool {
        switch self {
        case .streamEnd: true
        case .error(let e): e.seq != nil
        default: false
        }
    }
}

/// `ack`: the command `id` was accepted.
public struct Ack: Codable, Sendable, Equatable {
    public var type: String = "ack"
    /// The command id being acknowledged.
    public var id: String
    /// For `chat.send`, `stream.resume` and `stream.cancel`: the stream concerned.
    public var streamId: String?
    /// For `chat.send`: the conversation the message belongs to (new or existing).
    public var conversationId: String?
    /// For `chat.send`: `true` when this `id` was seen before and the client was re-attached to its stream.
    public var duplicate: Bool?
    /// For `auth.refresh`: when the new token expires (seconds since 1970).
    public var expiresAt: Double?

    public init(id: String, streamId: String? = nil, conversationId: String? = nil, duplicate: Bool? = nil, expiresAt: Double? = nil) {
        self.id = id
        self.streamId = streamId
        self.conversationId = conversationId
        self.duplicate = duplicate
        self.expiresAt = expiresAt
    }
}

/// Which model produces the answer, and whether it is a small demo model.
public struct ModelDescriptor: Codable, Sendable, Equatable {
    /// Provider name: `scripted`, `local`, `bedrock`, `anthropic`, `openai`.
    public var provider: String
    /// Provider-specific model id.
    public var id: String
    /// `true` for models that are not medical-grade (the scripted and embedded demo models).
    public var demo: Bool

    public init(provider: String, id: String, demo: Bool) {
        self.provider = provider
        self.id = id
        self.demo = demo
    }
}

/// `stream.start`: seq 1 of every response.
public struct StreamStart: Codable, Sendable, Equatable {
    public var type: String = "stream.start"
    public var streamId: String
    public var seq: Int
    public var conversationId: String
    /// The stored user message this stream answers.
    public var userMessageId: String
    /// The stored assistant message this stream writes.
    public var messageId: String
    public var model: ModelDescriptor

    public init(streamId: String, seq: Int, conversationId: String, userMessageId: String, messageId: String, model: ModelDescriptor) {
        self.streamId = streamId
        self.seq = seq
        self.conversationId = conversationId
        self.userMessageId = userMessageId
        self.messageId = messageId
        self.model = model
    }
}

/// `stream.chunk`: the next piece of the answer; at most the configured chunk size in characters
/// (extended grapheme clusters), never splitting one.
public struct StreamChunk: Codable, Sendable, Equatable {
    public var type: String = "stream.chunk"
    public var streamId: String
    public var seq: Int
    public var text: String

    public init(streamId: String, seq: Int, text: String) {
        self.streamId = streamId
        self.seq = seq
        self.text = text
    }
}

/// A tappable action attached to a safety event, such as `tel:911`.
public struct SafetyAction: Codable, Sendable, Equatable {
    public var label: String
    /// A `tel:`, `sms:` or `https:` link.
    public var href: String

    public init(label: String, href: String) {
        self.label = label
        self.href = href
    }
}

/// `safety.alert`: emergency guidance, sent before any model text. (Shape reserved; filled by the safety layer.)
public struct SafetyAlert: Codable, Sendable, Equatable {
    public var type: String = "safety.alert"
    public var streamId: String
    public var seq: Int
    /// Emergency category, for example `cardiac`, `stroke`, `suicide`.
    public var category: String
    /// `emergency` or `urgent`.
    public var severity: String
    public var guidance: String
    public var actions: [SafetyAction]

    public init(streamId: String, seq: Int, category: String, severity: String, guidance: String, actions: [SafetyAction]) {
        self.streamId = streamId
        self.seq = seq
        self.category = category
        self.severity = severity
        self.guidance = guidance
        self.actions = actions
    }
}

/// `safety.warning`: a non-emergency safety notice such as a medication interaction. (Shape reserved.)
public struct SafetyWarning: Codable, Sendable, Equatable {
    public var type: String = "safety.warning"
    public var streamId: String
    public var seq: Int
    /// For example `medication_interaction`.
    public var kind: String
    /// For medication interactions: the pair, as lowercase generic names.
    public var drugs: [String]?
    /// `high`, `moderate` or `low`.
    public var severity: String
    public var advice: String

    public init(streamId: String, seq: Int, kind: String, drugs: [String]?, severity: String, advice: String) {
        self.streamId = streamId
        self.seq = seq
        self.kind = kind
        self.drugs = drugs
        self.severity = severity
        self.advice = advice
    }
}

/// Token counts reported by the model.
public struct Usage: Codable, Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int

    public init(inputTokens: Int, outputTokens: Int) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// Why a stream ended normally.
public enum FinishReason: String, Codable, Sendable, Equatable {
    /// The model finished its answer.
    case complete
    /// The answer reached the output token limit.
    case length
    /// The client cancelled the stream.
    case cancelled
    /// The safety layer stopped the answer.
    case safety
}

/// `stream.end`: the terminal event of a stream that did not fail.
public struct StreamEnd: Codable, Sendable, Equatable {
    public var type: String = "stream.end"
    public var streamId: String
    public var seq: Int
    public var finishReason: FinishReason
    public var usage: Usage?

    public init(streamId: String, seq: Int, finishReason: FinishReason, usage: Usage?) {
        self.streamId = streamId
        self.seq = seq
        self.finishReason = finishReason
        self.usage = usage
    }
}

/// `error`: a typed error. With a `seq` it is the terminal event of that stream; without one it
/// answers the command `id` (or the connection, when no id could be read).
public struct ErrorEvent: Codable, Sendable, Equatable {
    public var type: String = "error"
    public var code: ErrorCode
    /// A message for people; never contains message text, tokens or internals.
    public var message: String
    public var retryable: Bool
    /// The command this error answers, when known.
    public var id: String?
    public var streamId: String?
    public var seq: Int?
    /// Suggested wait before retrying, in milliseconds.
    public var retryAfterMs: Int?
    /// How long to wait before trying again, in whole seconds (sent with `rate_limited`).
    public var retryAfter: Int?

    public init(code: ErrorCode, message: String, retryable: Bool? = nil, id: String? = nil, streamId: String? = nil, seq: Int? = nil, retryAfterMs: Int? = nil, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable ?? code.retryable
        self.id = id
        self.streamId = streamId
        self.seq = seq
        self.retryAfterMs = retryAfterMs
        self.retryAfter = retryAfter
    }
}
