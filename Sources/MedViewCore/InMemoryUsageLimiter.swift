import Foundation
import Synchronization

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
