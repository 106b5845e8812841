import Foundation
import MedViewCore
import Synchronization

/// Gateway connections kept in this process only: for the development-only SQLite store
/// (`MEDVIEW_LAMBDA_ALLOW_SQLITE=1`), where a single execution environment is assumed.
final class InMemoryGatewayConnections: GatewayConnectionStore {
    private let connections = Mutex<[String: GatewayConnection]>([:])

    func openGatewayConnection(_ connection: GatewayConnection, limit: Int, maxAge: Duration) async throws -> Bool {
        connections.withLock { all in
            let since = connection.openedAt - maxAge.timeInterval
            all = all.filter { $0.value.openedAt >= since }
            guard all.values.filter({ $0.userId == connection.userId && $0.id != connection.id }).count < limit else { return false }
            all[connection.id] = connection
            return true
        }
    }

    func gatewayConnection(id: String) async throws -> GatewayConnection? {
        connections.withLock { $0[id] }
    }

    func refreshGatewayConnection(id: String, expiresAt: Date) async throws -> Bool {
        connections.withLock { all in
            guard all[id] != nil else { return false }
            all[id]?.expiresAt = expiresAt
            return true
        }
    }

    func closeGatewayConnection(id: String) async throws {
        _ = connections.withLock { $0.removeValue(forKey: id) }
    }
}
