import Foundation
import Logging
import MedViewCore
import SQLiteNIO
import Synchronization

/// The audit log in its own SQLite file (`audit.sqlite` beside the conversations), append-only:
/// the store has no update or delete. Entries are read back in the order they were stored
/// (`rowid`), so an entry put in later shows up where it was put, for ``AuditChain/verify(_:)``.
public final class SQLiteAuditStore: AuditStore {
    private let connection: StoreConnection
    /// The chain's last entry as this store last wrote (or read) it. ``appendChained(_:)`` writes
    /// after it in one statement that checks it is still the file's last entry; `nil` until the
    /// first append, and after a failed one.
    private let head = Mutex<(seq: Int64, hash: String)?>(nil)

    /// The most entries appended in one statement (11 values each, well under SQLite's limit on
    /// bound values); a larger batch takes the transaction.
    static let entriesPerStatement = 200

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

    /// Appends after the chain's last entry without forking it, even when another process writes
    /// the same file (`medview keys rotate` beside a server).
    ///
    /// When this store knows the last entry (it wrote it), the events are chained after it and
    /// written by one statement that inserts them only if that entry is still the file's last:
    /// one trip to SQLite instead of four (begin, read the last entry, insert, commit). If another
    /// writer got in between, the statement writes nothing, and the last entry is read and the
    /// events appended after it in one `BEGIN IMMEDIATE` transaction, as on the first append.
    @discardableResult
    public func appendChained(_ events: [AuditEvent]) async throws -> [AuditEntry] {
        guard !events.isEmpty else { return [] }
        do {
            if let known = head.withLock({ $0 }), events.count <= Self.entriesPerStatement {
                let entries = AuditChain.entries(after: known, events: events)
                let written = try await connection.withConnection("audit.append") { db in
                    try await Self.insert(entries, ifLastHashIs: known.hash, on: db)
                }
                if written == entries.count {
                    remember(entries)
                    return entries
                }
                guard written == 0 else {
                    throw StoreError.unavailable("audit append wrote \(written) of \(entries.count) entries")
                }
            }
            let entries = try await connection.transaction("audit.append") { db in
                let entries = AuditChain.entries(after: try await Self.last(on: db), events: events)
                try await Self.insert(entries, on: db)
                return entries
            }
            remember(entries)
            return entries
        } catch {
            head.withLock { $0 = nil }
            throw error
        }
    }

    private func remember(_ entries: [AuditEntry]) {
        guard let last = entries.last else { return }
        head.withLock { $0 = (last.seq, last.hash) }
    }

    /// Inserts `entries` in one statement if the file's last entry has `lastHash`, else nothing;
    /// returns how many it inserted (all or none: a statement is atomic, and its `SELECT` is
    /// evaluated before any row is inserted).
    private static func insert(_ entries: [AuditEntry], ifLastHashIs lastHash: String, on db: SQLiteConnection) async throws -> Int {
        var values: [SQLiteData] = []
        values.reserveCapacity(entries.count * 11 + 1)
        for entry in entries { values += row(entry) }
        values.append(.text(lastHash))
        let rows = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: entries.count).joined(separator: ", ")
        let inserted = try await db.query(
            """
            INSERT INTO audit_log (seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash)
            SELECT * FROM (VALUES \(rows))
            WHERE (SELECT hash FROM audit_log ORDER BY rowid DESC LIMIT 1) IS ?
            RETURNING seq
            """,
            values
        )
        return inserted.count
    }

    private static func row(_ entry: AuditEntry) -> [SQLiteData] {
        let e = entry.event
        func optional(_ value: String?) -> SQLiteData { value.map { .text($0) } ?? .null }
        return [
            .integer(Int(entry.seq)), .integer(Int((e.at.timeIntervalSince1970 * 1000).rounded())), .text(e.action.rawValue),
            optional(e.userId), optional(e.channelId), optional(e.sourceAddress), optional(e.record),
            .text(e.outcome.rawValue), optional(e.reason), .text(entry.previousHash), .text(entry.hash),
        ]
    }

    private static func last(on db: SQLiteConnection) async throws -> (seq: Int64, hash: String)? {
        let rows = try await db.query("SELECT seq, hash FROM audit_log ORDER BY rowid DESC LIMIT 1", [])
        guard let row = rows.first, let seq = row.column("seq")?.integer, let hash = row.column("hash")?.string else { return nil }
        return (Int64(seq), hash)
    }

    private static func insert(_ entries: [AuditEntry], on db: SQLiteConnection) async throws {
        for entry in entries {
            _ = try await db.query(
                "INSERT INTO audit_log (seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row(entry)
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
