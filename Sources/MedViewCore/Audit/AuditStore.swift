import Foundation

/// Where audit entries are kept: append-only.
public protocol AuditStore: Sendable {
    /// The last entry's number and hash, to continue the chain (`nil` when empty).
    func last() async throws -> (seq: Int64, hash: String)?
    /// Appends entries, in order, in one transaction.
    func append(_ entries: [AuditEntry]) async throws
    /// Every entry in stored order, optionally only those at or after `since`.
    func entries(since: Date?) async throws -> [AuditEntry]
    /// Closes it; further calls fail.
    func close() async throws
}

/// An audit store in memory, for tests.
public actor InMemoryAuditStore: AuditStore {
    private var stored: [AuditEntry] = []

    public init() {}

    public func last() -> (seq: Int64, hash: String)? { stored.last.map { ($0.seq, $0.hash) } }
    public func append(_ entries: [AuditEntry]) { stored += entries }
    public func entries(since: Date?) -> [AuditEntry] { stored.filter { since == nil || $0.event.at >= since! } }
    public func close() {}
}
