import HummingbirdWebSocket
import Logging
import MedViewCore
import MedViewProtocol

/// Serves each upgraded WebSocket: admission (authentication outcome, the per-user limits,
/// the shared connection record), the session, and the close-out.
///
/// Memory: the connection's task lives as long as the socket, and a Swift task keeps the stack
/// slabs its deepest `await` needed until it ends (heaptrack on 2,000 idle sockets: about 29 of
/// the 36 KiB each held were such slabs). So everything that awaits on the way in or out
/// (refusals, the database's connection record) runs in a short-lived child task, and the
/// frames that stay while the socket idles are only this function's and the read loop's.
struct WebSocketServing: Sendable {
    let chat: ChatService
    let verifier: any TokenVerifier
    let limits: ServerConfiguration.Limits
    let metrics: ServerMetrics
    let audit: any AuditSink
    let sweeper: SessionSweeper
    let connections: ConnectionLimiter
    let sharedConnections: (any SharedConnectionLimit)?
    let instanceId: String
    let logger: Logger

    /// An admitted connection: its session and, with several processes, its shared record.
    private struct Admission: Sendable {
        var session: WebSocketSession
        var sharedConnectionId: String?
    }

    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, context: WSRequestContext) async {
        guard let admission = await Self.inChildTask({ await admit(inbound: inbound, outbound: outbound, context: context) }) else { return }
        let session = admission.session
        let userId = session.userId
        metrics.connectionAttempt(.websocket, .accepted)
        metrics.connectionOpened(.websocket)
        audit.record(AuditEvent(action: .connectionOpened, userId: userId, channelId: session.connectionId, sourceAddress: context.sourceAddress))
        sweeper.add(session)
        await LogContext.$connectionId.withValue(session.connectionId) {
            await session.run(inbound: inbound)
        }
        sweeper.remove(session)
        connections.release(userId)
        metrics.connectionClosed(.websocket)
        audit.record(AuditEvent(action: .connectionClosed, userId: userId, channelId: session.connectionId, sourceAddress: context.sourceAddress))
        if let id = admission.sharedConnectionId {
            await Self.inChildTask { await closeShared(id) }
        }
    }

    /// The session for an authenticated connection within its limits; otherwise tells the client
    /// why (4401, 4429) and returns `nil`.
    private func admit(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, context: WSRequestContext) async -> Admission? {
        let source = context.sourceAddress
        guard let identity = context.identity else {
            let failure = context.authFailure ?? ErrorEvent(code: .unauthorized, message: AuthError.missing.message)
            metrics.error(failure.code.rawValue)
            metrics.connectionAttempt(.websocket, .authRefused)
            audit.record(AuditEvent(action: .signInRefused, sourceAddress: source, outcome: .refused, reason: failure.code.rawValue))
            await WebSocketSession.refuse(inbound: inbound, outbound: outbound, error: failure, closeCode: WebSocketSession.CloseCode.unauthorized)
            return nil
        }
        guard connections.acquire(identity.userId) else {
            await refuseOverLimit(identity.userId, inbound: inbound, outbound: outbound, source: source)
            return nil
        }
        // With several processes on one database, the limit counts the user's connections on
        // all of them. If the database cannot answer, the per-process limit alone applies.
        var sharedConnectionId: String?
        if let sharedConnections {
            let id = Identifier.make("w")
            do {
                guard try await sharedConnections.openConnection(id: id, userId: identity.userId, instanceId: instanceId) else {
                    connections.release(identity.userId)
                    await refuseOverLimit(identity.userId, inbound: inbound, outbound: outbound, source: source)
                    return nil
                }
                sharedConnectionId = id
            } catch {
                logger.info("connections.shared.unavailable", metadata: ["error.type": "\(type(of: error))"])
            }
        }
        let channel = context.channel
        let session = WebSocketSession(identity: identity, outbound: outbound, chat: chat, verifier: verifier, limits: limits, metrics: metrics, audit: audit, sourceAddress: source, logger: logger) {
            channel.close(promise: nil)
        }
        return Admission(session: session, sharedConnectionId: sharedConnectionId)
    }

    private func refuseOverLimit(_ userId: String, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, source: String?) async {
        metrics.error(ErrorCode.tooManyConnections.rawValue)
        metrics.connectionAttempt(.websocket, .limit)
        audit.record(AuditEvent(action: .connectionOpened, userId: userId, sourceAddress: source, outcome: .refused, reason: ErrorCode.tooManyConnections.rawValue))
        await WebSocketSession.refuse(inbound: inbound, outbound: outbound, error: ErrorEvent(code: .tooManyConnections, message: "Too many open connections for this user."), closeCode: WebSocketSession.CloseCode.tooManyConnections)
    }

    private func closeShared(_ id: String) async {
        do {
            try await sharedConnections?.closeConnection(id: id)
        } catch {
            // Forgotten anyway once this process stops (its rows go with its heartbeat).
            logger.info("connections.shared.close_failed", metadata: ["error.type": "\(type(of: error))"])
        }
    }

    /// Runs `body` in a child task, whose stack slabs are freed when it ends.
    static func inChildTask<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
        await withTaskGroup(of: T.self) { group in
            group.addTask(operation: body)
            return await group.next()!
        }
    }
}
