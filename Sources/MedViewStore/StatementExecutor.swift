import NIOPosix
import SQLiteNIO

/// A result row, by column name: SQLiteNIO's rows and ``DirectSQLite``'s alike, so one decoder
/// (`SQLiteRow+Decoding`) reads both.
protocol StoreRow: Sendable {
    func column(_ name: String) -> SQLiteData?
}

extension SQLiteRow: StoreRow {}

/// What runs the store's SQL: the SQLiteNIO connection (a job on its thread pool per statement)
/// or a ``DirectSQLite`` handle (on the caller's thread). ``TurnSQL`` and ``ConversationSQL``
/// are written once against it.
protocol StatementExecutor {
    associatedtype Row: StoreRow
    func query(_ sql: String, _ binds: [SQLiteData]) async throws -> [Row]
}

extension SQLiteConnection: StatementExecutor {}

extension DirectSQLite: StatementExecutor {}

/// A ``DirectSQLite`` handle whose statements run on SQLite's thread pool (each a job there and
/// a hop back, but compiled once): for work that would hold the caller's thread for long, or
/// while the service is busy, when the caller's thread is better left to other tasks.
struct PooledDirectSQLite: StatementExecutor {
    let db: DirectSQLite

    func query(_ sql: String, _ binds: [SQLiteData]) async throws -> [DirectSQLite.Row] {
        try await NIOThreadPool.singleton.runIfActive { try db.query(sql, binds) }
    }
}
