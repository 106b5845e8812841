import Foundation

/// Which per-user limit refused a message.
public enum RateLimitReason: Sendable, Equatable {
    /// More messages than the token bucket allows (messages per minute, burst).
    case messageRate
    /// The user's output tokens today reached the daily budget.
    case dailyOutputBudget
}

/// How fast and how much one user may ask.
public struct UsageLimits: Sendable, Equatable {
    /// Messages per minute a user may send on average (the bucket's refill rate).
    public var messagesPerMinute: Int
    /// Messages a user may send at once after a pause (the bucket's size).
    public var burst: Int
    /// Output tokens one user's answers may use per UTC day; `nil` for no budget.
    public var dailyOutputTokens: Int?

    public init(messagesPerMinute: Int = 20, burst: Int = 20, dailyOutputTokens: Int? = nil) {
        self.messagesPerMinute = messagesPerMinute
        self.burst = burst
        self.dailyOutputTokens = dailyOutputTokens
    }
}

/// The per-user limits the ``ChatService`` consults before it starts a new answer: a port, so
/// that one instance keeps them in memory (``InMemoryUsageLimiter``) and a scaled-out deployment
/// can keep them in its shared database.
///
/// Contract: ``admitMessage(userId:now:)`` either admits (and counts) one message or throws
/// ``ChatError/rateLimited(_:retryAfter:)`` with a wait of at least one second after which the
/// same call would be admitted if nothing else happens; it never throws anything else. A re-sent
/// message that re-attaches to its stream is not counted (the service does not ask).
public protocol UsageLimiter: Sendable {
    /// Admits one new message of `userId` at `now`, or refuses it.
    func admitMessage(userId: String, now: Date) async throws(ChatError)
    /// Counts `tokens` output tokens of an answer to `userId` that ended at `now`.
    func recordOutput(userId: String, tokens: Int, now: Date) async
}

/// A limiter that admits everything (benchmarks of the engine alone; no deployment uses it).
public struct UnlimitedUsage: UsageLimiter {
    public init() {}
    public func admitMessage(userId: String, now: Date) async throws(ChatError) {}
    public func recordOutput(userId: String, tokens: Int, now: Date) async {}
}
