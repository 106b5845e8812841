import Foundation
import NIOCore
import SQLiteNIO
import VaporCSQLite

/// A second handle on the store's file for the statements on the path of every message, run on
/// the caller's thread with their compiled form kept (issue 16).
///
/// SQLiteNIO runs each statement as a job on its thread pool and compiles it again every time;
/// a new turn (one statement whose trigger writes four rows) spent more time in those two hops
/// and in compiling than in SQLite writing it. Here a statement is compiled once per handle and
/// reused (`sqlite3_reset`), and it runs where it is called: no thread hop, no wake-up.
///
/// What keeps that safe:
/// - The caller holds ``StoreConnection``'s lock, so this handle and the SQLiteNIO connection
///   never write at once, and the handle is never used from two threads at once.
/// - It never waits for a lock held by another process (`medview keys rotate` beside a
///   server): its busy timeout is zero, and a busy database is ``Failure/busy``, on which the
///   caller runs the work on the SQLiteNIO connection, whose 5 s busy timeout waits on a
///   thread-pool thread, not on the caller's.
/// - It does not checkpoint the WAL on the caller's thread (a checkpoint writes and syncs the
///   database file): automatic checkpoints are off on this handle, and after a commit that left
///   the WAL past ``checkpointPages`` it asks its owner (``onLargeWAL``) to checkpoint elsewhere.
///   Only if those checkpoints fall behind, past four times that, it checkpoints itself, so the
///   WAL stays bounded.
/// - It is only used in WAL mode (see ``StoreConnection``), where the two handles share the
///   WAL's index in memory.
final class DirectSQLite: @unchecked Sendable {
    /// Why a statement failed: SQLite's primary result code (never its message, which may
    /// quote data).
    enum Failure: Error, Equatable, CustomStringConvertible {
        /// Another connection (another process) holds the database's write lock.
        case busy
        /// Any other result code.
        case code(Int32)

        var description: String {
            switch self {
            case .busy: "database is busy"
            case .code(let code): String(cString: sqlite_nio_sqlite3_errstr(code))
            }
        }
    }

    /// One result row: the statement's column names (shared by its rows) and this row's values.
    struct Row: StoreRow {
        let names: [String]
        let values: [SQLiteData]

        func column(_ name: String) -> SQLiteData? {
            names.firstIndex(of: name).map { values[$0] }
        }
    }

    /// WAL pages after which a commit asks for a checkpoint (SQLite's own automatic default).
    static let checkpointPages: Int32 = 1000

    /// Compiled statements kept at most; past it the least recently used one is dropped.
    static let cachedStatements = 48

    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]
    private var lastUse: [String: UInt64] = [:]
    private var uses: UInt64 = 0
    /// WAL pages after the last commit (set by the WAL hook).
    fileprivate var walPages: Int32 = 0
    /// What a test counts (``SQLiteConversationStore/counting(_:)``): top-level writes and
    /// transaction statements as SQLite authorizes them while compiling, and commits.
    struct Observer {
        var write: () -> Void
        var transaction: () -> Void
        var commit: () -> Void
    }

    /// While set, every statement is compiled afresh (so that the authorizer sees each run, as
    /// with SQLiteNIO) and reported to it. For tests; set and cleared while holding the lock.
    var observer: Observer? {
        didSet { installObserverHooks() }
    }

    /// Called (on the committing thread) after a commit that left the WAL past ``checkpointPages``.
    /// Set once, before the handle is used.
    var onLargeWAL: @Sendable () -> Void = {}
    /// Called (on the committing thread) before this handle checkpoints a WAL that the
    /// checkpoints asked for have not kept small (past four times ``checkpointPages``): the owner
    /// waits there for its own checkpoint to end, which SQLite would otherwise find busy. Set
    /// once, before the handle is used.
    var beforeOwnCheckpoint: @Sendable () -> Void = {}

    /// Opens `path` for reading and writing, or for reading only; the file must exist (the
    /// SQLiteNIO connection created and migrated it).
    init(path: String, readOnly: Bool) throws {
        var opened: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_FULLMUTEX
        let status = sqlite_nio_sqlite3_open_v2(path, &opened, flags, nil)
        guard status == SQLITE_OK, let opened else {
            sqlite_nio_sqlite3_close(opened)
            throw Failure.code(status)
        }
        handle = opened
        do {
            for pragma in readOnly
                ? ["PRAGMA query_only=ON"]
                : ["PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL", "PRAGMA secure_delete=ON"] {
                _ = try query(pragma)
            }
        } catch {
            close()
            throw error
        }
        sqlite_nio_sqlite3_busy_timeout(opened, 0)
        if !readOnly {
            sqlite_nio_sqlite3_wal_autocheckpoint(opened, 0)
            sqlite_nio_sqlite3_wal_hook(opened, { context, _, _, pages in
                guard let context else { return SQLITE_OK }
                Unmanaged<DirectSQLite>.fromOpaque(context).takeUnretainedValue().walPages = pages
                return SQLITE_OK
            }, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    deinit { close() }

    /// Runs `sql` with `binds` and returns its rows. The statement's compiled form is kept for
    /// the next call with the same text.
    func query(_ sql: String, _ binds: [SQLiteData] = []) throws -> [Row] {
        guard let handle else { throw Failure.code(SQLITE_MISUSE) }
        let (statement, kept) = try prepared(sql, on: handle)
        defer {
            if kept {
                sqlite_nio_sqlite3_reset(statement)
                // The values (message text among them) are not kept in the statement. Each is
                // set to NULL rather than cleared at once: `sqlite3_clear_bindings` marks a
                // statement whose plan looked at any bound value as stale, so it would be
                // compiled again at its next run.
                for index in 0..<sqlite_nio_sqlite3_bind_parameter_count(statement) {
                    sqlite_nio_sqlite3_bind_null(statement, index + 1)
                }
            } else {
                sqlite_nio_sqlite3_finalize(statement)
            }
        }
        for (offset, value) in binds.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch value {
            case .text(let text):
                status = sqlite_nio_sqlite3_bind_text64(statement, index, text, UInt64(text.utf8.count), transient, UInt8(SQLITE_UTF8))
            case .integer(let integer): status = sqlite_nio_sqlite3_bind_int64(statement, index, Int64(integer))
            case .float(let real): status = sqlite_nio_sqlite3_bind_double(statement, index, real)
            case .blob(let buffer):
                status = buffer.withUnsafeReadableBytes { bytes in
                    sqlite_nio_sqlite3_bind_blob64(statement, index, bytes.baseAddress, UInt64(bytes.count), transient)
                }
            case .null: status = sqlite_nio_sqlite3_bind_null(statement, index)
            }
            guard status == SQLITE_OK else { throw Self.failure(status) }
        }
        var rows: [Row] = []
        var names: [String]?
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw Self.failure(status) }
            let count = sqlite_nio_sqlite3_column_count(statement)
            if names == nil {
                names = (0..<count).map { String(cString: sqlite_nio_sqlite3_column_name(statement, $0)) }
            }
            rows.append(Row(names: names ?? [], values: (0..<count).map { Self.value(statement, $0) }))
        }
        if walPages > Self.checkpointPages * 4 {
            // The checkpoints asked for fell behind the writes: bound the WAL here.
            walPages = 0
            beforeOwnCheckpoint()
            sqlite_nio_sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        } else if walPages > Self.checkpointPages {
            walPages = 0
            onLargeWAL()
        }
        return rows
    }

    /// Column `index` of the current row.
    private static func value(_ statement: OpaquePointer, _ index: Int32) -> SQLiteData {
        switch sqlite_nio_sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER:
            return .integer(Int(sqlite_nio_sqlite3_column_int64(statement, index)))
        case SQLITE_FLOAT:
            return .float(sqlite_nio_sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, index))
            guard let bytes = sqlite_nio_sqlite3_column_text(statement, index) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, index))
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            if count > 0, let bytes = sqlite_nio_sqlite3_column_blob(statement, index) {
                buffer.writeBytes(UnsafeRawBufferPointer(start: bytes, count: count))
            }
            return .blob(buffer)
        default:
            return .null
        }
    }

    /// Finalizes every kept statement and closes the handle. Closing twice is harmless.
    func close() {
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        statements.removeAll()
        lastUse.removeAll()
        if let handle {
            sqlite_nio_sqlite3_wal_hook(handle, nil, nil)
            sqlite_nio_sqlite3_close_v2(handle)
        }
        handle = nil
    }

    /// Statements kept now (tests check the cache is bounded).
    var cachedCount: Int { statements.count }

    /// How many times SQLite compiled the kept statements again (tests check a statement kept
    /// for reuse is not compiled anew at each run).
    var recompilations: Int {
        statements.values.reduce(0) { $0 + Int(sqlite_nio_sqlite3_stmt_status($1, SQLITE_STMTSTATUS_REPREPARE, 0)) }
    }

    /// The compiled statement for `sql`, and whether it is kept for reuse.
    private func prepared(_ sql: String, on handle: OpaquePointer) throws(Failure) -> (OpaquePointer, Bool) {
        if observer != nil {
            var statement: OpaquePointer?
            let status = sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, 0, &statement, nil)
            guard status == SQLITE_OK, let statement else {
                sqlite_nio_sqlite3_finalize(statement)
                throw Self.failure(status)
            }
            return (statement, false)
        }
        uses += 1
        if let statement = statements[sql] {
            lastUse[sql] = uses
            return (statement, true)
        }
        if statements.count >= Self.cachedStatements, let oldest = lastUse.min(by: { $0.value < $1.value })?.key {
            sqlite_nio_sqlite3_finalize(statements.removeValue(forKey: oldest))
            lastUse[oldest] = nil
        }
        var statement: OpaquePointer?
        let status = sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else {
            sqlite_nio_sqlite3_finalize(statement)
            throw Self.failure(status)
        }
        statements[sql] = statement
        lastUse[sql] = uses
        return (statement, true)
    }

    private func installObserverHooks() {
        guard let handle else { return }
        let context = observer == nil ? nil : Unmanaged.passUnretained(self).toOpaque()
        sqlite_nio_sqlite3_commit_hook(handle, context == nil ? nil : { context in
            Unmanaged<DirectSQLite>.fromOpaque(context!).takeUnretainedValue().observer?.commit()
            return 0
        }, context)
        sqlite_nio_sqlite3_set_authorizer(handle, context == nil ? nil : { context, action, _, _, _, trigger in
            guard trigger == nil, let observer = Unmanaged<DirectSQLite>.fromOpaque(context!).takeUnretainedValue().observer else { return SQLITE_OK }
            switch action {
            case SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE: observer.write()
            case SQLITE_TRANSACTION: observer.transaction()
            default: break
            }
            return SQLITE_OK
        }, context)
    }

    private static func failure(_ status: Int32) -> Failure {
        let primary = status & 0xFF
        return primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? .busy : .code(primary)
    }
}

/// SQLite copies a bound value before the bind call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
