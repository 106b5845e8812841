import Logging
import MedViewCore
import MedViewProtocol
import NIOCore
import NIOHTTP1

/// Serves each upgraded WebSocket: admission (authentication outcome, the per-user limits,
/// the shared connection record), the session, and the close-out.
///
/// Memory: no task lives as long as the socket (``WebSocketUpgradeChannel``). Admission runs in
/// the connection's task, which ends once the session is attached to the socket's frame
/// handler; the close-out runs when the channel closes.
struct WebSocketServing: Sendable {
    let chat: ChatService
    let verifier: any TokenVerifier
    let limits: ServerConfiguration.Limits
    let metrics: ServerMetrics
    let audit: any AuditSink
    let sweeper: SessionSweeper
    let connections: ConnectionLimiter
    let sharedConnections: (any SharedConnectionLimit)?
    let unauthenticated: UnauthenticatedConnections?
    let instanceId: String
    let logger: Logger

    /// Whether an upgrade request may be upgraded, and as whom: `nil` (an empty 400) for any
    /// path but `GET /v1/ws`.
    ///
    /// Non-browser clients send `Authorization: Bearer <jwt>`. Browsers, which cannot set
    /// headers on a WebSocket, offer two subprotocols: `medview.v1` and `medview.bearer.<jwt>`;
    /// the server answers with `medview.v1` only, so the token is never echoed, and it never
    /// appears in a URL.
    ///
    /// A failed check does not refuse the upgrade: browsers cannot read upgrade statuses at all.
    /// Instead the socket opens only to carry one typed `error` (`unauthorized` or
    /// `token_expired`) and closes with 4401; no command is ever read on it.
    func authorize(_ head: HTTPRequestHead, channel: any Channel) async -> WebSocketUpgrade? {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard head.method == .GET, path == "/v1/ws" else { return nil }
        let offer = UpgradeCredentials(authorization: head.headers.first(name: "Authorization"), subprotocolHeaders: head.headers["Sec-WebSocket-Protocol"])
        let caller: WebSocketUpgrade.Caller
        if let failure = offer.failure {
            caller = .refused(failure)
        } else if let token = offer.token, !token.isEmpty {
            do {
                caller = .authenticated(try await verifier.verify(token))
                unauthenticated?.authenticated(channel)
            } catch {
                caller = .refused(ErrorEvent(code: error.errorCode, message: error.message))
            }
        } else {
            caller = .refused(ErrorEvent(code: .unauthorized, message: AuthError.missing.message))
        }
        return WebSocketUpgrade(caller: caller, offeredSubprotocol: offer.offeredSubprotocol, sourceAddress: channel.remoteAddress?.ipAddress)
    }

    /// Admits an upgraded socket and attaches its session to it, or refuses it (4401, 4429).
    /// Returns once that is done; the socket stays open.
    func open(_ connection: WebSocketConnection, upgrade: WebSocketUpgrade) async {
        let source = upgrade.sourceAddress
        let identity: VerifiedIdentity
        switch upgrade.caller {
        case .authenticated(let verified):
            identity = verified
        case .refused(let failure):
            metrics.error(failure.code.rawValue)
            metrics.connectionAttempt(.websocket, .authRefused)
            audit.record(AuditEvent(action: .signInRefused, sourceAddress: source, outcome: .refused, reason: failure.code.rawValue))
            connection.refuse(failure, closeCode: WebSocketSession.CloseCode.unauthorized)
            return
        }
        let userId = identity.userId
        guard connections.acquire(userId) else {
            refuseOverLimit(userId, connection: connection, source: source)
            return
        }
        // With several processes on one database, the limit counts the user's connections on
        // all of them. If the database cannot answer, the per-process limit alone applies.
        var sharedConnectionId: String?
        if let sharedConnections {
            let id = Identifier.make("w")
            do {
                guard try await sharedConnections.openConnection(id: id, userId: userId, instanceId: instanceId) else {
                    connections.release(userId)
                    refuseOverLimit(userId, connection: connection, source: source)
                    return
                }
                sharedConnectionId = id
            } catch {
                logger.info("connections.shared.unavailable", metadata: ["error.type": "\(type(of: error))"])
            }
        }
        let session = WebSocketSession(identity: identity, writer: WebSocketWriter(channel: connection.channel), chat: chat, verifier: verifier, limits: limits, metrics: metrics, audit: audit, sourceAddress: source, logger: logger)
        metrics.connectionAttempt(.websocket, .accepted)
        metrics.connectionOpened(.websocket)
        audit.record(AuditEvent(action: .connectionOpened, userId: userId, channelId: session.connectionId, sourceAddress: source))
        sweeper.add(session)
        LogContext.$connectionId.withValue(session.connectionId) {
            logger.debug("ws.open", metadata: ["ws.id": "\(session.connectionId)"])
        }
        // Runs at once if the client has already gone.
        connection.channel.closeFuture.whenComplete { [self, sharedConnectionId] _ in
            session.connectionClosed()
            sweeper.remove(session)
            connections.release(userId)
            metrics.connectionClosed(.websocket)
            audit.record(AuditEvent(action: .connectionClosed, userId: userId, channelId: session.connectionId, sourceAddress: source))
            if let id = sharedConnectionId {
                Task { await closeShared(id) }
            }
        }
        connection.attach(session)
    }

    private func refuseOverLimit(_ userId: String, connection: WebSocketConnection, source: String?) {
        metrics.error(ErrorCode.tooManyConnections.rawValue)
        metrics.connectionAttempt(.websocket, .limit)
        audit.record(AuditEvent(action: .connectionOpened, userId: userId, sourceAddress: source, outcome: .refused, reason: ErrorCode.tooManyConnections.rawValue))
        connection.refuse(ErrorEvent(code: .tooManyConnections, message: "Too many open connections for this user."), closeCode: WebSocketSession.CloseCode.tooManyConnections)
    }

    private func closeShared(_ id: String) async {
        do {
            try await sharedConnections?.closeConnection(id: id)
        } catch {
            // Forgotten anyway once this process stops (its rows go with its heartbeat).
            logger.info("connections.shared.close_failed", metadata: ["error.type": "\(type(of: error))"])
        }
    }
}
