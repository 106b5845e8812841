import Foundation
import Synchronization

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

/// ``UsageLimiter`` in this process's memory: a token bucket per user and, optionally, the output
/// tokens each user's answers used today (UTC).
///
/// Invariants: a user's bucket holds between 0 and `burst` messages and refills at
/// `messagesPerMinute` per minute; time is passed in, so a test needs no clock. Users whose bucket
/// is full and who spent nothing today are forgotten from time to time, so memory follows the
/// active users, not every user ever seen.
public final class InMemoryUsageLimiter: UsageLimiter {
    private struct Usage {
        var tokens: Double
        var updated: Date
        var day: Int
        var spent: Int
    }

    private struct State {
        var users: [String: Usage] = [:]
        var callsSinceSweep = 0
    }

    public let limits: UsageLimits
    private let state = Mutex(State())

    public init(limits: UsageLimits) {
        precondition(limits.messagesPerMinute >= 1 && limits.burst >= 1, "rate limits must be at least 1")
        self.limits = limits
    }

    static func day(_ date: Date) -> Int { Int((date.timeIntervalSince1970 / 86_400).rounded(.down)) }

    public func admitMessage(userId: String, now: Date) async throws(ChatError) {
        let limits = self.limits
        let refusal = state.withLock { s -> ChatError? in
            s.callsSinceSweep += 1
            if s.callsSinceSweep >= 1024 { Self.sweep(&s, now: now, limits: limits) }
            let today = Self.day(now)
            var usage = s.users[userId] ?? Usage(tokens: Double(limits.burst), updated: now, day: today, spent: 0)
            Self.refill(&usage, now: now, limits: limits)
            if usage.day != today {
                usage.day = today
                usage.spent = 0
            }
            defer { s.users[userId] = usage }
            if let budget = limits.dailyOutputTokens, usage.spent >= budget {
                let midnight = Double(today + 1) * 86_400
                return .rateLimited(.dailyOutputBudget, retryAfter: max(1, Int((midnight - now.timeIntervalSince1970).rounded(.up))))
            }
            guard usage.tokens >= 1 else {
                let wait = (1 - usage.tokens) * 60 / Double(limits.messagesPerMinute)
                return .rateLimited(.messageRate, retryAfter: max(1, Int(wait.rounded(.up))))
            }
            usage.tokens -= 1
            return nil
        }
        if let refusal { throw refusal }
    }

    public func recordOutput(userId: String, tokens: Int, now: Date) async {
        guard limits.dailyOutputTokens != nil, tokens > 0 else { return }
        let limits = self.limits
        state.withLock { s in
            let today = Self.day(now)
            var usage = s.users[userId] ?? Usage(tokens: Double(limits.burst), updated: now, day: today, spent: 0)
            if usage.day != today {
                usage.day = today
                usage.spent = 0
            }
            usage.spent += tokens
            s.users[userId] = usage
        }
    }

    /// How many users are tracked now (tests).
    public var trackedUsers: Int { state.withLock { $0.users.count } }

    private static func refill(_ usage: inout Usage, now: Date, limits: UsageLimits) {
        let elapsed = max(0, now.timeIntervalSince(usage.updated))
        usage.tokens = min(Double(limits.burst), usage.tokens + elapsed * Double(limits.messagesPerMinute) / 60)
        usage.updated = max(usage.updated, now)
    }

    private static func sweep(_ s: inout State, now: Date, limits: UsageLimits) {
        s.callsSinceSweep = 0
        let today = day(now)
        s.users = s.users.filter { _, usage in
            var u = usage
            refill(&u, now: now, limits: limits)
            return u.tokens < Double(limits.burst) || (u.day == today && u.spent > 0)
        }
    }
}
