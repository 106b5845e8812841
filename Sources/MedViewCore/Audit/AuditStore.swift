import Foundation

/// Where audit entries are kept: append-only.
///
/// Writers call ``appendChained(_:)``: the store chains the events after its last entry and
/// appends them as one step that no other writer of the same log can interleave with, so a log
/// shared by several processes (PostgreSQL) stays one valid chain.
public protocol AuditStore: Sendable {
    /// The last entry's number and hash, to continue the chain (`nil` when empty).
    func last() async throws -> (seq: Int64, hash: String)?
    /// Appends entries exactly as given, in order, in one transaction (tests use it to forge).
    func append(_ entries: [AuditEntry]) async throws
    /// Chains `events` after the last stored entry and appends them, atomically with respect to
    /// every other writer of the log; returns the entries as stored.
    @discardableResult
    func appendChained(_ events: [AuditEvent]) async throws -> [AuditEntry]
    /// Every entry in stored order, optionally only those at or after `since`.
    func entries(since: Date?) async throws -> [AuditEntry]
    /// Closes it; further calls fail.
    func close() async throws
}

extension AuditStore {
    /// For a log with a single writer: reads the last entry, then appends (not atomic; stores
    /// that several writers share override it).
    @discardableResult
    public func appendChained(_ events: [AuditEvent]) async throws -> [AuditEntry] {
        let entries = AuditChain.entries(after: try await last(), events: events)
        try await append(entries)
        return entries
    }
}

/// An audit store in memory, for tests.
public actor InMemoryAuditStore: AuditStore {
    private var stored: [AuditEntry] = []

    public init() {}

    public func last() -> (seq: Int64, hash: String)? { stored.last.map { ($0.seq, $0.hash) } }
    public func append(_ entries: [AuditEntry]) { stored += entries }
    @discardableResult
    public func appendChained(_ events: [AuditEvent]) -> [AuditEntry] {
        let entries = AuditChain.entries(after: last(), events: events)
        stored += entries
        return entries
    }
    public func entries(since: Date?) -> [AuditEntry] { stored.filter { since == nil || $0.event.at >= since! } }
    public func close() {}
}
