/// Why a chat operation was refused, in domain terms. The wire code and the text a patient sees
/// are chosen in one place, ``WireMapping``. Never carries user text.
public enum ChatError: Error, Sendable, Equatable {
    /// The message has no visible text.
    case emptyMessage
    /// The text holds U+0000 or another control character that is not tab, line feed or carriage
    /// return (``TextRules``).
    case invalidText
    /// The user is over a rate limit; `retryAfter` whole seconds from now it will admit again.
    case rateLimited(RateLimitReason, retryAfter: Int)
    /// The message is longer than the configured limit (in characters).
    case messageTooLarge(limit: Int)
    /// The client message id was used before for a different message.
    case idempotencyConflict
    /// The engine is draining for shutdown and takes no new answers.
    case shuttingDown
    /// The user already has `limit` answers streaming.
    case tooManyStreams(limit: Int)
    /// The process runs as many answers as it admits (its memory budget); another instance, or
    /// this one a moment later, can take the message.
    case overloaded
    /// No such conversation for this user.
    case conversationNotFound
    /// No such stream for this user.
    case streamNotFound
    /// The stream's answer was interrupted by a restart before any event was stored.
    case streamNotReplayable
    /// The stored replay log could not be decoded.
    case storedStreamUnreadable
    /// The store failed while doing `operation`.
    case storageUnavailable(StorageOperation)

    /// What the engine was doing when the store failed.
    public enum StorageOperation: Sendable, Equatable {
        case saveMessage
        case loadStream
        case deleteConversation
    }
}
