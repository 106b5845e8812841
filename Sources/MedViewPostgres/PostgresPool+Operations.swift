import Logging
import MedViewCore
import PostgresNIO

extension PostgresPool {
    /// Runs `body` on a pooled connection; failures become typed errors that name `operation` and
    /// the SQLSTATE, never the query or its values.
    func run<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withConnection(body)
        } catch {
            throw PostgresConversationStore.storeError(error, operation: operation)
        }
    }

    /// Runs `body` inside `BEGIN … COMMIT` on one pooled connection, rolling back if it throws.
    func transaction<T: Sendable>(_ operation: String, logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await run(operation) { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return result
            } catch {
                do {
                    try await connection.query("ROLLBACK", logger: logger)
                } catch {
                    logger.info("store.rollback.failed", metadata: ["store.operation": "\(operation)"])
                }
                throw error
            }
        }
    }
}
