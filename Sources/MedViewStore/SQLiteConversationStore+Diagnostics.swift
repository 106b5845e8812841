import SQLiteNIO
import Synchronization

extension SQLiteConversationStore {
    /// Runs one raw statement and returns each row as column name to text (NULL columns are left
    /// out). For tests and diagnostics only.
    package func rawQuery(_ sql: String, _ binds: [String] = []) async throws -> [[String: String]] {
        try await connection.withConnection("rawQuery") { connection in
            try await connection.query(sql, binds.map { .text($0) }).map { row in
                var values: [String: String] = [:]
                for column in row.columns {
                    if let text = column.data.string { values[column.name] = text }
                }
                return values
            }
        }
    }

    /// What SQLite was asked to do while a body ran (see ``counting(_:)``).
    package struct StatementCounts: Sendable, Equatable {
        /// Transactions committed (explicit or implicit).
        package var commits = 0
        /// Writes authorized while top-level statements were prepared: one per INSERT or DELETE,
        /// one per column an UPDATE sets (the statements of a trigger are not counted: they run
        /// inside the statement that fired it).
        package var writes = 0
        /// `BEGIN`, `COMMIT` and `ROLLBACK` statements prepared.
        package var transactionStatements = 0
    }

    /// Runs `body` and counts the commits and statements it caused on this store's connection.
    /// For tests only: the counts include any other call running meanwhile.
    package func counting<T>(_ body: () async throws -> T) async throws -> (T, StatementCounts) {
        let counts = Mutex(StatementCounts())
        let tokens = try await connection.withConnection("counting") { connection in
            let commits = try await connection.addCommitObserver(lifetime: .pinned) { _ in
                counts.withLock { $0.commits += 1 }
            }
            let statements = try await connection.addAuthorizerObserver(lifetime: .pinned) { event in
                guard event.trigger == nil else { return }
                switch event.action {
                case .insert, .update, .delete: counts.withLock { $0.writes += 1 }
                case .transaction: counts.withLock { $0.transactionStatements += 1 }
                default: break
                }
            }
            return [commits, statements]
        }
        // The direct writer (the path of new and finished turns) is counted the same way.
        await connection.observeDirectWriter(DirectSQLite.Observer(
            write: { counts.withLock { $0.writes += 1 } },
            transaction: { counts.withLock { $0.transactionStatements += 1 } },
            commit: { counts.withLock { $0.commits += 1 } }
        ))
        let result: T
        do {
            result = try await body()
        } catch {
            await connection.observeDirectWriter(nil)
            try await connection.withConnection("counting") { _ in tokens.forEach { $0.cancel() } }
            throw error
        }
        await connection.observeDirectWriter(nil)
        try await connection.withConnection("counting") { _ in tokens.forEach { $0.cancel() } }
        return (result, counts.withLock { $0 })
    }
}
