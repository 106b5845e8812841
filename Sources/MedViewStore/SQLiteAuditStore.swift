import Foundation
import Logging
import MedViewCore
import SQLiteNIO

/// The audit log in its own SQLite file (`audit.sqlite` beside the conversations), append-only:
/// the store has no update or delete. Entries are read back in the order they were stored
/// (`rowid`), so an entry put in later shows up where it was put, for ``AuditChain/verify(_:)``.
public final class SQLiteAuditStore: AuditStore {
    private let connection: StoreConnection

    static let migrations = [
        SQLiteMigration(version: 1, statements: [
            """
            CREATE TABLE audit_log (
                seq INTEGER NOT NULL,
                at_ms INTEGER NOT NULL,
                action TEXT NOT NULL,
                user_id TEXT,
                channel_id TEXT,
                source_address TEXT,
                record TEXT,
                outcome TEXT NOT NULL,
                reason TEXT,
                previous_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            )
            """,
            "CREATE INDEX audit_log_at ON audit_log (at_ms)",
        ]),
    ]

    private init(connection: StoreConnection) {
        self.connection = connection
    }

    /// The audit file in a data directory.
    public static func path(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("audit.sqlite")
    }

    /// Opens (creating and migrating) the audit file at `path`.
    public static func open(path: String, logger: Logger) async throws -> SQLiteAuditStore {
        SQLiteAuditStore(connection: try await StoreConnection.open(path: path, logger: logger, migrations: migrations))
    }

    public func last() async throws -> (seq: Int64, hash: String)? {
        try await connection.withConnection("audit.last") { db in try await Self.last(on: db) }
    }

    public func append(_ entries: [AuditEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await connection.transaction("audit.append") { db in
            try await Self.insert(entries, on: db)
        }
    }

    /// Reads the last entry and appends after it in one `BEGIN IMMEDIATE` transaction, so another
    /// process writing the same file (`medview keys rotate` beside a server) cannot fork the chain.
    @discardableResult
    public func appendChained(_ events: [AuditEvent]) async throws -> [AuditEntry] {
        guard !events.isEmpty else { return [] }
        return try await connection.transaction("audit.append") { db in
            let entries = AuditChain.entries(after: try await Self.last(on: db), events: events)
            try await Self.insert(entries, on: db)
            return entries
        }
    }

    private static func last(on db: SQLiteConnection) async throws -> (seq: Int64, hash: String)? {
        let rows = try await db.query("SELECT seq, hash FROM audit_log ORDER BY rowid DESC LIMIT 1", [])
        guard let row = rows.first, let seq = row.column("seq")?.integer, let hash = row.column("hash")?.string else { return nil }
        return (Int64(seq), hash)
    }

    private static func insert(_ entries: [AuditEntry], on db: SQLiteConnection) async throws {
        for entry in entries {
            let e = entry.event
            func optional(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
            _ = try await db.query(
                "INSERT INTO audit_log (seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    .integer(Int(entry.seq)), .integer(Int((e.at.timeIntervalSince1970 * 1000).rounded())), .text(e.action.rawValue),
                    optional(e.userId), optional(e.channelId), optional(e.sourceAddress), optional(e.record),
                    .text(e.outcome.rawValue), optional(e.reason), .text(entry.previousHash), .text(entry.hash),
                ]
            )
        }
    }

    public func entries(since: Date?) async throws -> [AuditEntry] {
        try await connection.withConnection("audit.entries") { db in
            let sinceMs = since.map { Int(($0.timeIntervalSince1970 * 1000).rounded()) } ?? Int.min
            let rows = try await db.query("SELECT * FROM audit_log WHERE at_ms >= ? ORDER BY rowid", [.integer(sinceMs)])
            return rows.compactMap { row -> AuditEntry? in
                guard let seq = row.column("seq")?.integer, let at = row.column("at_ms")?.integer,
                      let actionName = row.column("action")?.string,
                      let outcomeName = row.column("outcome")?.string,
                      let previous = row.column("previous_hash")?.string, let hash = row.column("hash")?.string
                else { return nil }
                // An unknown action or outcome (a row written by hand) still shows up, and fails its hash.
                let action = AuditEvent.Action(rawValue: actionName) ?? .signInRefused
                let outcome = AuditEvent.Outcome(rawValue: outcomeName) ?? .failed
                let event = AuditEvent(
                    at: Date(timeIntervalSince1970: Double(at) / 1000), action: action,
                    userId: row.column("user_id")?.string, channelId: row.column("channel_id")?.string,
                    sourceAddress: row.column("source_address")?.string, record: row.column("record")?.string,
                    outcome: outcome, reason: row.column("reason")?.string
                )
                return AuditEntry(seq: Int64(seq), event: event, previousHash: previous, hash: hash)
            }
        }
    }

    public func close() async throws {
        try await connection.close()
    }
}
