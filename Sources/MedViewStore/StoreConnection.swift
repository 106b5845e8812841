import Foundation
import Logging
import MedViewCore
import SQLiteNIO
import Synchronization

/// The store's SQLite connection, and the lock that keeps each call's statements together; and
/// a second, read-only connection for the reads on the path of a new message.
///
/// Invariants: every statement on the connection runs while holding `lock`, so two calls never
/// interleave inside one transaction; once ``close()`` has run, both connections are `nil` and
/// every call throws ``StoreError/unavailable(_:)``. Failures leave here as ``StoreError`` only,
/// naming the operation and SQLite's result code, never SQLite's message (which may quote data).
///
/// The reader (``withReader(_:_:)``): in WAL mode a read on another connection sees every
/// transaction committed before it starts and never waits for a write in progress, so the
/// conversation's context is read while the new turn is stored instead of after it (issue 16).
/// Each of its statements is its own read transaction. Without WAL (a file system that cannot
/// share memory) there is no reader and reads take the lock like writes.
final class StoreConnection: Sendable {
    /// `nil` once closed. Read only while holding `lock`.
    private let connection: Mutex<SQLiteConnection?>
    private let lock = AsyncLock()
    /// The read-only connection (`nil` without WAL, and once closed). Read only while holding `readLock`.
    private let reader: Mutex<SQLiteConnection?>
    private let readLock = AsyncLock()
    /// Direct handles on the file for the statements on every message's path (``DirectSQLite``):
    /// `nil` without WAL or if one could not be opened. The writer is used only while holding
    /// `lock`, the reader only while holding `readLock`; both are closed by ``close()``.
    private let directWriter: DirectSQLite?
    private let directReader: DirectSQLite?
    /// Reads running or waiting in ``withFastReader(_:_:)``.
    private let fastReads = Atomic<Int>(0)
    /// Checkpoints the WAL the direct writer fills, on a thread and handle of its own
    /// (``WALCheckpointer``); closed by ``close()``.
    let checkpointer: WALCheckpointer?
    private let logger: Logger

    /// Per-connection settings applied on open. `secure_delete` overwrites deleted content so an
    /// erased conversation does not linger in free pages.
    private static let pragmas = [
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=5000",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA secure_delete=ON",
    ]

    private init(connection: SQLiteConnection, reader: SQLiteConnection?, directWriter: DirectSQLite?, directReader: DirectSQLite?, checkpointer: WALCheckpointer?, logger: Logger) {
        self.connection = Mutex(connection)
        self.reader = Mutex(reader)
        self.directWriter = directWriter
        self.directReader = directReader
        self.checkpointer = checkpointer
        self.logger = logger
        // The direct writer never checkpoints on its caller's thread (until the WAL is four times
        // the size that asks for a checkpoint), and a checkpoint never holds `lock`.
        directWriter?.onLargeWAL = { [weak checkpointer] in checkpointer?.request() }
        directWriter?.beforeOwnCheckpoint = { [weak checkpointer] in checkpointer?.waitUntilIdle() }
    }

    /// Opens (creating it, mode 0600, and its parent directory, mode 0700, if needed) the database at `path`, configures
    /// the connection and applies the `migrations` the file does not record yet.
    /// - Throws: ``StoreError/unavailable(_:)`` if the file cannot be opened or migrated.
    static func open(path: String, logger: Logger, migrations: [SQLiteMigration]) async throws -> StoreConnection {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let files = FileManager.default
        do {
            // Only the server's user may read patients' data: a directory it creates is 0700, a
            // database file it creates 0600 (SQLite gives its -wal and -shm files the same mode).
            if !files.fileExists(atPath: directory) {
                try files.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            if !files.fileExists(atPath: path) {
                guard files.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                    throw StoreError.unavailable("cannot create the database file")
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.unavailable("cannot create the database directory")
        }
        let connection: SQLiteConnection
        var isWAL = false
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw storeError(error, operation: "open")
        }
        do {
            for pragma in pragmas {
                _ = try await connection.query(pragma, [])
            }
            let foreignKeys = try await connection.query("PRAGMA foreign_keys", [])
            guard foreignKeys.first?.column("foreign_keys")?.integer == 1 else {
                throw StoreError.unavailable("foreign keys are not supported")
            }
            let journal = try await connection.query("PRAGMA journal_mode", [])
            isWAL = journal.first?.column("journal_mode")?.string?.lowercased() == "wal"
            if !isWAL {
                logger.info("store.journal.not_wal")
            }
            try await SQLiteMigration.migrate(connection, to: migrations, logger: logger)
        } catch {
            try? await connection.close()
            throw storeError(error, operation: "open")
        }
        var reader: SQLiteConnection?
        if isWAL {
            do {
                let opened = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
                reader = opened
                for pragma in ["PRAGMA busy_timeout=5000", "PRAGMA query_only=ON"] {
                    _ = try await opened.query(pragma, [])
                }
            } catch {
                // Reads then share the one connection, as without WAL.
                try? await reader?.close()
                reader = nil
                logger.info("store.reader.unavailable", metadata: ["error.type": "\(type(of: error))"])
            }
        }
        var directWriter: DirectSQLite?
        var directReader: DirectSQLite?
        if reader != nil {
            do {
                directWriter = try DirectSQLite(path: path, readOnly: false)
                directReader = try DirectSQLite(path: path, readOnly: true)
            } catch {
                // The store works without them, through SQLiteNIO alone.
                directWriter?.close()
                directWriter = nil
                logger.info("store.direct.unavailable", metadata: ["error.type": "\(type(of: error))"])
            }
        }
        return StoreConnection(
            connection: connection, reader: reader, directWriter: directWriter, directReader: directReader,
            checkpointer: directWriter == nil ? nil : WALCheckpointer(path: path, logger: logger), logger: logger
        )
    }

    /// Runs `body` with the connection while holding the lock.
    func withConnection<T>(_ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        try await with(connection, holding: lock, operation, body)
    }

    /// Runs `body` with the read-only connection, which does not wait for writes (see the type's
    /// notes); with the connection itself when there is none. `body` must only read, and should
    /// be one statement where a consistent view matters (each statement is its own snapshot).
    func withReader<T>(_ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        guard reader.withLock({ $0 != nil }) else { return try await withConnection(operation, body) }
        return try await with(reader, holding: readLock, operation, body)
    }

    /// Runs `body` with the connection in `slot` while holding `lock`; a closed store is `unavailable`.
    private func with<T>(_ slot: borrowing Mutex<SQLiteConnection?>, holding lock: AsyncLock, _ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        do {
            return try await lock.withLock {
                guard let connection = slot.withLock({ $0 }) else {
                    throw StoreError.unavailable("store is closed")
                }
                return try await body(connection)
            }
        } catch {
            throw Self.storeError(error, operation: operation)
        }
    }

    /// Runs `body` while holding the lock with the direct writer (``DirectSQLite``) when there is
    /// one, else with the SQLiteNIO connection. `body` must be one statement, or run inside
    /// ``writerTransaction(_:inline:_:)``: if another process holds the database's write lock, the
    /// direct attempt has written nothing, and `body` runs again on the SQLiteNIO connection,
    /// whose busy timeout waits on a thread-pool thread instead of the caller's.
    ///
    /// `inline`: the statements run on the caller's thread (no hop: for one small write while the
    /// service is quiet); otherwise each is a job on SQLite's thread pool, so that a long batch
    /// does not hold one of the few threads Swift's tasks run on.
    func withWriter<T>(_ operation: String, inline: Bool, _ body: (any StatementExecutor) async throws -> T) async throws -> T {
        try await with(connection, holding: lock, operation) { connection in
            if let directWriter {
                do {
                    return try await inline ? body(directWriter) : body(PooledDirectSQLite(db: directWriter))
                } catch DirectSQLite.Failure.busy {
                    logger.debug("store.direct.busy", metadata: ["store.operation": "\(operation)"])
                }
            }
            return try await body(connection)
        }
    }

    /// ``withWriter(_:inline:_:)`` inside `BEGIN IMMEDIATE ... COMMIT`, rolled back if anything throws.
    func writerTransaction<T>(_ operation: String, inline: Bool, _ body: (any StatementExecutor) async throws -> T) async throws -> T {
        try await withWriter(operation, inline: inline) { db in
            try await inTransaction(operation, on: db) { try await body($0) }
        }
    }

    /// Runs `body`, which must only read and should be one statement, with the direct reader
    /// (``DirectSQLite``) when there is one, else as ``withReader(_:_:)``: on the caller's thread
    /// when no other such read is running or waiting (a quiet service, where the hop would be most
    /// of the read's time), else on SQLite's thread pool; on the SQLiteNIO reader if it is busy.
    func withFastReader<T>(_ operation: String, _ body: (any StatementExecutor) async throws -> T) async throws -> T {
        guard let directReader else { return try await withReader(operation) { try await body($0) } }
        let quiet = fastReads.wrappingAdd(1, ordering: .relaxed).oldValue == 0
        defer { fastReads.wrappingSubtract(1, ordering: .relaxed) }
        return try await with(reader, holding: readLock, operation) { reader in
            do {
                return try await quiet ? body(directReader) : body(PooledDirectSQLite(db: directReader))
            } catch DirectSQLite.Failure.busy {
                return try await body(reader)
            }
        }
    }

    /// Sets (or clears) the direct writer's observer while holding the lock. For tests.
    func observeDirectWriter(_ observer: DirectSQLite.Observer?) async {
        await lock.withLock { directWriter?.observer = observer }
    }

    /// ``withConnection(_:_:)`` with no WAL checkpoint of the checkpointer running meanwhile
    /// (``WALCheckpointer/pausing(_:)``): for an erasure, whose `TRUNCATE` checkpoint a running
    /// one would make busy.
    func withConnectionAlone<T>(_ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        guard let checkpointer else { return try await withConnection(operation, body) }
        return try await checkpointer.pausing { try await withConnection(operation, body) }
    }

    /// Runs `body` inside `BEGIN IMMEDIATE ... COMMIT`, rolling back if anything throws.
    func transaction<T>(_ operation: String, _ body: (SQLiteConnection) async throws -> T) async throws -> T {
        try await withConnection(operation) { connection in
            try await inTransaction(operation, on: connection, body)
        }
    }

    /// `body` on `db` inside `BEGIN IMMEDIATE ... COMMIT`, rolled back if anything throws.
    private func inTransaction<DB: StatementExecutor, T>(_ operation: String, on db: DB, _ body: (DB) async throws -> T) async throws -> T {
        _ = try await db.query("BEGIN IMMEDIATE", [])
        do {
            let result = try await body(db)
            _ = try await db.query("COMMIT", [])
            return result
        } catch {
            do {
                _ = try await db.query("ROLLBACK", [])
            } catch {
                // The caller gets the original failure; the failed rollback is context only.
                logger.info("store.rollback.failed", metadata: ["store.operation": "\(operation)"])
            }
            throw error
        }
    }

    /// Closes the connection after any running call finishes; later calls throw
    /// ``StoreError/unavailable(_:)``. Closing twice is harmless.
    func close() async throws {
        try await lock.withLock {
            let open = connection.withLock { connection -> SQLiteConnection? in
                defer { connection = nil }
                return connection
            }
            guard let open else { return }
            checkpointer?.close()
            directWriter?.close()
            let reader = await readLock.withLock {
                directReader?.close()
                return self.reader.withLock { reader -> SQLiteConnection? in
                    defer { reader = nil }
                    return reader
                }
            }
            try? await reader?.close()
            do {
                try await open.close()
            } catch {
                throw Self.storeError(error, operation: "close")
            }
            logger.debug("store.closed")
        }
    }

    /// The error a caller sees: typed store errors as they are, anything else as `unavailable`
    /// naming the operation and SQLite's result code (never its message, which may quote data).
    static func storeError(_ error: any Error, operation: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? SQLiteError { return .unavailable("\(operation) failed: \(error.reason)") }
        if let error = error as? DirectSQLite.Failure { return .unavailable("\(operation) failed: \(error)") }
        return .unavailable("\(operation) failed")
    }
}
