import Logging
import MedViewCore
import PostgresNIO

extension PostgresPool {
    /// The longest one store operation may take, waiting for a connection included.
    static let operationTimeout: Duration = .seconds(8)

    /// Runs `body` on a pooled connection; failures become typed errors that name `operation` and
    /// the SQLSTATE, never the query or its values.
    ///
    /// An operation that cannot get a connection and finish within ``operationTimeout`` (the
    /// database is unreachable: the pool keeps trying to connect, with backoff, and would
    /// otherwise keep the caller waiting) fails with ``StoreError/unavailable(_:)`` at the deadline,
    /// even when the work does not heed cancellation (``withinDeadline(_:operation:_:)``), so an
    /// answer's ending is kept for a later write and the client gets a typed, retryable error.
    func run<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await withinDeadline(Self.operationTimeout, operation: operation) {
                try await self.withConnection(body)
            }
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
