import Foundation

/// One thing someone did to a record, for the audit trail (HIPAA 45 CFR 164.312(b)): who, what,
/// which record, from where, when, and how it ended. Never carries PHI: no message text, no
/// titles, no tokens; only ids, codes and addresses.
public struct AuditEvent: Sendable, Equatable, Codable {
    /// What was done.
    public enum Action: String, Sendable, Codable, CaseIterable {
        case signInRefused = "auth.refused"
        case connectionOpened = "connection.opened"
        case connectionClosed = "connection.closed"
        case conversationCreated = "conversation.created"
        case conversationsListed = "conversation.listed"
        case conversationRead = "conversation.read"
        case conversationDeleted = "conversation.deleted"
        case messageSent = "message.sent"
        case streamResumed = "stream.resumed"
        case streamCancelled = "stream.cancelled"
        case keysRotated = "keys.rotated"
    }

    /// How it ended.
    public enum Outcome: String, Sendable, Codable {
        case success
        case refused
        case failed
    }

    /// When it happened.
    public var at: Date
    public var action: Action
    /// The user who acted, when known (a refused sign-in has none).
    public var userId: String?
    /// The connection (`ws_…`) or request id it came through.
    public var channelId: String?
    /// The client's address as the server saw it.
    public var sourceAddress: String?
    /// The record acted on: a conversation id (`c_…`) or stream id (`s_…`).
    public var record: String?
    public var outcome: Outcome
    /// A wire error code for refusals and failures (`unauthorized`, `not_found`, …).
    public var reason: String?

    public init(at: Date = Date(), action: Action, userId: String? = nil, channelId: String? = nil, sourceAddress: String? = nil, record: String? = nil, outcome: Outcome = .success, reason: String? = nil) {
        self.at = at
        self.action = action
        self.userId = userId
        self.channelId = channelId
        self.sourceAddress = sourceAddress
        self.record = record
        self.outcome = outcome
        self.reason = reason
    }
}

/// Where the edges report what happened. `record` must return at once and never fail the
/// caller: writing the audit log never blocks a stream.
public protocol AuditSink: Sendable {
    func record(_ event: AuditEvent)
}

/// Discards events (tools and tests that do not audit).
public struct NoAudit: AuditSink {
    public init() {}
    public func record(_ event: AuditEvent) {}
}
