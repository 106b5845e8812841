import Foundation
import MedViewCore
import PostgresNIO

extension PostgresConversationStore: GatewayConnectionStore {
    /// Counts the user's connections opened within `maxAge` and records this one if under
    /// `limit`, under the same per-user advisory lock as ``openConnection(id:userId:instanceId:)``;
    /// connections older than `maxAge` are deleted on the way (a lost `$disconnect`).
    public func openGatewayConnection(_ c: GatewayConnection, limit: Int, maxAge: Duration) async throws -> Bool {
        try await transaction("openGatewayConnection") { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.connectionLockClass), hashtext(\(c.userId)))", logger: self.logger)
            let since = c.openedAt - maxAge.timeInterval
            try await connection.query("DELETE FROM gateway_connections WHERE user_id = \(c.userId) AND opened_at < \(since)", logger: self.logger)
            let open = try await Self.count(connection, logger: self.logger, "SELECT count(*)::bigint FROM gateway_connections WHERE user_id = \(c.userId) AND id <> \(c.id)")
            guard open < limit else { return false }
            try await connection.query(
                """
                INSERT INTO gateway_connections (id, user_id, expires_at, opened_at) VALUES (\(c.id), \(c.userId), \(c.expiresAt), \(c.openedAt))
                ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at, opened_at = excluded.opened_at
                """,
                logger: self.logger
            )
            return true
        }
    }

    public func gatewayConnection(id: String) async throws -> GatewayConnection? {
        try await withConnection("gatewayConnection") { connection in
            for try await (userId, expiresAt, openedAt) in try await connection.query(
                "SELECT user_id, expires_at, opened_at FROM gateway_connections WHERE id = \(id)", logger: self.logger
            ).decode((String, Date, Date).self) {
                return GatewayConnection(id: id, userId: userId, expiresAt: expiresAt, openedAt: openedAt)
            }
            return nil
        }
    }

    public func refreshGatewayConnection(id: String, expiresAt: Date) async throws -> Bool {
        try await withConnection("refreshGatewayConnection") { connection in
            var updated = false
            for try await _ in try await connection.query(
                "UPDATE gateway_connections SET expires_at = \(expiresAt) WHERE id = \(id) RETURNING id", logger: self.logger
            ).decode(String.self) {
                updated = true
            }
            return updated
        }
    }

    public func closeGatewayConnection(id: String) async throws {
        try await withConnection("closeGatewayConnection") { connection in
            try await connection.query("DELETE FROM gateway_connections WHERE id = \(id)", logger: self.logger)
            return ()
        }
    }
}
