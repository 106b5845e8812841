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
