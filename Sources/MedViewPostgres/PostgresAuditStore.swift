import Foundation
import Logging
import MedViewCore
import PostgresNIO
import Synchronization

/// The audit log in the `audit_log` table of the PostgreSQL database (schema version 3), shared
/// by every `medview serve` task and `medview keys rotate`, on the conversation store's pool.
///
/// One chain under concurrent writers: every append first takes the transaction-scoped advisory
/// lock ``lockClass`` / hash of the schema, then reads the last entry and inserts after it
/// (``appendChained(_:)`` does all three in one call of `medview_audit_append`, which writes
/// nothing if the batch was chained after another entry). Writers of one log therefore append
/// one batch at a time; the lock is released when the transaction ends (commit or rollback),
/// after its rows are visible, so the next writer's read sees them. `seq` is also unique, so a
/// writer that ever skipped the lock would fail rather than fork the chain. Entries are read back in insertion order
/// (`position`), so a row put in later shows up where it was put, for ``AuditChain/verify(_:)``.
///
/// Append-only: the table's triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` (an owner can
/// disable them; the hash chain is what shows that they did).
///
/// Lifecycle: the pool belongs to the ``PostgresConversationStore`` that opened it; ``close()``
/// does nothing. Put the pool's Service before the audit writer so it closes after the writer's
/// last append.
public final class PostgresAuditStore: AuditStore {
    /// The advisory lock's first key ("MV" + 2); the second is `hashtext(current_schema())`, so
    /// schemas (test runs) do not wait for each other.
    static let lockClass: Int32 = 0x4D56_0002

    private let pool: PostgresPool
    private let logger: Logger
    private let head = Mutex(Head.unknown)

    /// The audit table on `store`'s pool (and in its schema).
    public convenience init(store: PostgresConversationStore, logger: Logger) {
        self.init(pool: store.pool, logger: logger)
    }

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    public func last() async throws -> (seq: Int64, hash: String)? {
        try await pool.run("audit.last") { connection in
            try await Self.last(on: connection, logger: self.logger).map { ($0.seq, $0.hash) }
        }
    }

    public func append(_ entries: [AuditEntry]) async throws {
        guard !entries.isEmpty else { return }
        try await pool.transaction("audit.append", logger: logger) { connection in
            try await Self.lock(connection, logger: self.logger)
            try await Self.insert(entries, on: connection, logger: self.logger)
        }
    }

    /// Appends after the chain's last entry in one round trip (`medview_audit_append`, created at
    /// every start: ``PostgresMigration/repeatable``): the events are chained after the last entry this store knows of (the one it wrote, or
    /// read on its first append) and inserted under the append lock only if that entry is still
    /// the log's last. If another writer got in between, nothing is written and the function
    /// returns the log's last entry; the events are chained after it and sent again. After
    /// ``appendAttempts`` such sends (writers busy on every side) the batch is appended in a
    /// transaction that holds the lock across the read, as every append used to be: it cannot
    /// lose, so no batch waits forever.
    @discardableResult
    public func appendChained(_ events: [AuditEvent]) async throws -> [AuditEntry] {
        guard !events.isEmpty else { return [] }
        let events = events.map(Self.storable)
        do {
            var last: (seq: Int64, hash: String)?
            switch head.withLock({ $0 }) {
            case .known(let known): last = known
            case .unknown: last = try await self.last()
            }
            for _ in 0..<Self.appendAttempts {
                let entries = AuditChain.entries(after: last, events: events)
                let statement = HotStatements.AuditAppend(lockClass: Self.lockClass, last: last, entries: entries)
                let (written, seq, hash) = try await pool.run("audit.append") { connection in
                    var outcome: HotStatements.AuditAppend.Row?
                    for try await row in try await connection.execute(statement, logger: self.logger) where outcome == nil {
                        outcome = row
                    }
                    guard let outcome else { throw StoreError.unavailable("audit.append failed: no outcome") }
                    return outcome
                }
                if written { return remember(entries) }
                if let seq, let hash { last = (seq, hash) } else { last = nil }
            }
            // Busy writers kept getting in between: append holding the lock across the read.
            let entries = try await pool.transaction("audit.append", logger: logger) { connection in
                try await Self.lock(connection, logger: self.logger)
                let entries = AuditChain.entries(after: try await Self.last(on: connection, logger: self.logger), events: events)
                try await Self.insert(entries, on: connection, logger: self.logger)
                return entries
            }
            return remember(entries)
        } catch {
            head.withLock { $0 = .unknown }
            throw error
        }
    }

    /// Records `entries`' last as the chain's head (they were just written after it) and returns them.
    private func remember(_ entries: [AuditEntry]) -> [AuditEntry] {
        head.withLock { $0 = .known(entries.last.map { ($0.seq, $0.hash) }) }
        return entries
    }

    /// Sends of one batch in one round trip before it is appended in a transaction that holds the
    /// lock across the read (each send is lost only to another writer's append in between).
    static let appendAttempts = 2

    /// The chain's last entry as this store last saw it.
    enum Head {
        case unknown
        /// `nil`: the log was empty.
        case known((seq: Int64, hash: String)?)
    }

    public func entries(since: Date?) async throws -> [AuditEntry] {
        let sinceMs = since.map(Self.milliseconds) ?? Int64.min
        return try await pool.run("audit.entries") { connection in
            let rows = try await connection.query(
                """
                SELECT seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash
                FROM audit_log WHERE at_ms >= \(sinceMs) ORDER BY position
                """,
                logger: self.logger
            )
            var entries: [AuditEntry] = []
            for try await (seq, at, actionName, userId, channelId, source, record, outcomeName, reason, previous, hash) in rows.decode(
                (Int64, Int64, String, String?, String?, String?, String?, String, String?, String, String).self
            ) {
                // An unknown action or outcome (a row written by hand) still shows up, and fails its hash.
                let event = AuditEvent(
                    at: Date(timeIntervalSince1970: Double(at) / 1000), action: AuditEvent.Action(rawValue: actionName) ?? .signInRefused,
                    userId: userId, channelId: channelId, sourceAddress: source, record: record,
                    outcome: AuditEvent.Outcome(rawValue: outcomeName) ?? .failed, reason: reason
                )
                entries.append(AuditEntry(seq: seq, event: event, previousHash: previous, hash: hash))
            }
            return entries
        }
    }

    /// Does nothing: the pool is the conversation store's, closed by its Service.
    public func close() async throws {}

    // MARK: - SQL

    /// `event` with any U+0000 (which `text` cannot hold) replaced by U+FFFD before it is chained,
    /// so that one odd address or id never blocks the log; the hash covers the stored form.
    static func storable(_ event: AuditEvent) -> AuditEvent {
        func clean(_ value: String?) -> String? {
            guard let value, value.utf8.contains(0) else { return value }
            return value.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}")
        }
        var event = event
        event.userId = clean(event.userId)
        event.channelId = clean(event.channelId)
        event.sourceAddress = clean(event.sourceAddress)
        event.record = clean(event.record)
        event.reason = clean(event.reason)
        return event
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// Waits for, and holds until the transaction ends, the log's append lock.
    private static func lock(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(\(lockClass), hashtext(current_schema()))", logger: logger)
    }

    private static func last(on connection: PostgresConnection, logger: Logger) async throws -> (seq: Int64, hash: String)? {
        let rows = try await connection.query("SELECT seq, hash FROM audit_log ORDER BY position DESC LIMIT 1", logger: logger)
        for try await (seq, hash) in rows.decode((Int64, String).self) { return (seq, hash) }
        return nil
    }

    /// One statement for the whole batch. A missing optional is sent as `''` and stored as NULL
    /// (the hash treats both alike).
    private static func insert(_ entries: [AuditEntry], on connection: PostgresConnection, logger: Logger) async throws {
        let events = entries.map(\.event)
        let seqs = entries.map(\.seq)
        let times = events.map { milliseconds($0.at) }
        let actions = events.map(\.action.rawValue)
        let users = events.map { $0.userId ?? "" }
        let channels = events.map { $0.channelId ?? "" }
        let sources = events.map { $0.sourceAddress ?? "" }
        let records = events.map { $0.record ?? "" }
        let outcomes = events.map(\.outcome.rawValue)
        let reasons = events.map { $0.reason ?? "" }
        let previous = entries.map(\.previousHash)
        let hashes = entries.map(\.hash)
        try await connection.query(
            """
            INSERT INTO audit_log (seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash)
            SELECT e.seq, e.at_ms, e.action, NULLIF(e.user_id, ''), NULLIF(e.channel_id, ''), NULLIF(e.source_address, ''),
                   NULLIF(e.record, ''), e.outcome, NULLIF(e.reason, ''), e.previous_hash, e.hash
            FROM unnest(\(seqs)::bigint[], \(times)::bigint[], \(actions)::text[], \(users)::text[], \(channels)::text[],
                        \(sources)::text[], \(records)::text[], \(outcomes)::text[], \(reasons)::text[], \(previous)::text[], \(hashes)::text[])
                 WITH ORDINALITY AS e(seq, at_ms, action, user_id, channel_id, source_address, record, outcome, reason, previous_hash, hash, n)
            ORDER BY e.n
            """,
            logger: logger
        )
    }
}
