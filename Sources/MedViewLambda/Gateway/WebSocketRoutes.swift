import Foundation
import Logging
import MedViewCore
import MedViewProtocol
import MedViewServer

/// The API Gateway WebSocket routes: `$connect` authenticates and records the connection,
/// `$disconnect` forgets it, and `$default` carries the project's protocol unchanged
/// (docs/PROTOCOL.md), one command per invocation, every server event posted back through the
/// Management API.
///
/// Invocations are stateless: who a connection belongs to, and until when its token holds, are
/// read from the shared store (``GatewayConnectionStore``) on every message.
struct WebSocketRoutes: Sendable {
    /// API Gateway closes every WebSocket after two hours: a recorded connection older than that
    /// is gone even if its `$disconnect` was lost.
    static let maxConnectionAge: Duration = .seconds(2 * 3600)

    let chat: ChatService
    let verifier: any TokenVerifier
    let connections: any GatewayConnectionStore
    let management: ManagementAPI
    let limits: ServerConfiguration.Limits
    let audit: any AuditSink
    let metrics: ServerMetrics
    let deadlineMargin: Duration
    let logger: Logger

    func handle(_ event: WebSocketEvent, context: LambdaInvocationContext) async -> GatewayResponse {
        let id = event.requestContext.connectionId
        var logger = logger
        logger[metadataKey: "ws.id"] = "\(id)"
        switch event.requestContext.eventType {
        case "CONNECT": return await connect(event, id: id, logger: logger)
        case "DISCONNECT": return await disconnect(id: id, logger: logger)
        default:
            await message(event, id: id, context: context, logger: logger)
            return .ok
        }
    }

    // MARK: - $connect and $disconnect

    private func connect(_ event: WebSocketEvent, id: String, logger: Logger) async -> GatewayResponse {
        let source = event.requestContext.identity?.sourceIp
        let offer = UpgradeCredentials(authorization: event.headerValues("Authorization").first, subprotocolHeaders: event.headerValues("Sec-WebSocket-Protocol"))
        let identity: VerifiedIdentity
        do throws(AuthError) {
            if offer.failure != nil { throw .invalid }
            guard let token = offer.token, !token.isEmpty else { throw .missing }
            identity = try await verifier.verify(token)
        } catch {
            // API Gateway answers the upgrade with this status; nothing can be posted from $connect.
            metrics.connectionAttempt(.websocket, .authRefused)
            audit.record(AuditEvent(action: .signInRefused, channelId: id, sourceAddress: source, outcome: .refused, reason: (offer.failure?.code ?? error.errorCode).rawValue))
            return GatewayResponse(statusCode: 401, body: String(decoding: APIError(error.errorCode, error.message).errorBody, as: UTF8.self))
        }
        let record = GatewayConnection(id: id, userId: identity.userId, expiresAt: identity.expiresAt, openedAt: Date())
        do {
            guard try await connections.openGatewayConnection(record, limit: limits.maxConnectionsPerUser, maxAge: Self.maxConnectionAge) else {
                metrics.connectionAttempt(.websocket, .limit)
                audit.record(AuditEvent(action: .connectionOpened, userId: identity.userId, channelId: id, sourceAddress: source, outcome: .refused, reason: ErrorCode.tooManyConnections.rawValue))
                let error = APIError(.tooManyConnections, "At most \(limits.maxConnectionsPerUser) connections per user.")
                return GatewayResponse(statusCode: 429, body: String(decoding: error.errorBody, as: UTF8.self))
            }
        } catch {
            logger.warning("lambda.connect.store_failed", metadata: ["error.type": "\(type(of: error))"])
            return GatewayResponse(statusCode: 503)
        }
        metrics.connectionAttempt(.websocket, .accepted)
        audit.record(AuditEvent(action: .connectionOpened, userId: identity.userId, channelId: id, sourceAddress: source))
        logger.debug("ws.open", metadata: ["user.id": "\(identity.userId)"])
        // Browsers offered `medview.v1` (with the bearer entry): name it, never the token.
        return GatewayResponse(statusCode: 200, headers: offer.offeredSubprotocol ? ["Sec-WebSocket-Protocol": ProtocolLimits.subprotocol] : nil)
    }

    private func disconnect(id: String, logger: Logger) async -> GatewayResponse {
        let known = try? await connections.gatewayConnection(id: id)
        do {
            try await connections.closeGatewayConnection(id: id)
        } catch {
            logger.warning("lambda.disconnect.store_failed", metadata: ["error.type": "\(type(of: error))"])
        }
        if let known { audit.record(AuditEvent(action: .connectionClosed, userId: known.userId, channelId: id)) }
        logger.debug("ws.close")
        return .ok
    }

    // MARK: - $default: the protocol

    private func message(_ event: WebSocketEvent, id: String, context: LambdaInvocationContext, logger: Logger) async {
        let connection: GatewayConnection?
        do {
            connection = try await connections.gatewayConnection(id: id)
        } catch {
            logger.warning("lambda.message.store_failed", metadata: ["error.type": "\(type(of: error))"])
            await post(id, .error(ErrorEvent(code: .storageUnavailable, message: "Storage is unavailable; try again.")))
            return
        }
        guard var connection else {
            // Not opened through $connect here (or already forgotten): refuse and close.
            await post(id, .error(ErrorEvent(code: .unauthorized, message: AuthError.missing.message)))
            try? await management.close(connectionId: id)
            return
        }
        var logger = logger
        logger[metadataKey: "user.id"] = "\(connection.userId)"
        guard let data = event.messageData, event.isBase64Encoded != true else {
            await sendError(id, ErrorEvent(code: .unsupportedFrame, message: "Send commands as JSON text frames."))
            return
        }
        guard data.count <= limits.maxFrameBytes else {
            await sendError(id, ErrorEvent(code: .frameTooLarge, message: "A message may be at most \(limits.maxFrameBytes) bytes."))
            return
        }
        let command: ClientCommand
        do {
            command = try ClientCommand.decode(data)
        } catch {
            await sendError(id, ErrorEvent(code: error.code, message: error.message, id: error.commandId))
            return
        }
        var isRefresh = false
        if case .authRefresh = command { isRefresh = true }
        if connection.expiresAt <= Date(), !isRefresh {
            await post(id, .error(ErrorEvent(code: .tokenExpired, message: AuthError.expired.message, id: command.id)))
            try? await management.close(connectionId: id)
            return
        }
        let user = connection.userId
        let stopAt = context.deadline - deadlineMargin.timeInterval
        switch command {
        case .chatSend(let c):
            do {
                let result = try await chat.send(userId: user, conversationId: c.conversationId, clientMessageId: c.id, text: c.text)
                if c.conversationId == nil, !result.duplicate { record(.conversationCreated, user, id, result.conversationId) }
                record(.messageSent, user, id, result.conversationId)
                await post(id, .ack(Ack(id: c.id, streamId: result.stream.id, conversationId: result.conversationId, duplicate: result.duplicate ? true : nil)))
                // A new answer runs in this invocation: it is delivered (and stored) to its end.
                let delivery = Delivery(chat: chat, stream: result.stream, owned: !result.duplicate, stopAt: stopAt, keepAlive: limits.keepAliveInterval)
                let ending = await delivery.run(after: 0) { await post(id, $0) }
                logger.debug("lambda.delivery.ended", metadata: ["stream.id": "\(result.stream.id)", "delivery.ending": "\(ending)"])
            } catch {
                record(.messageSent, user, id, c.conversationId, refusal: error.code)
                await sendError(id, ErrorEvent(code: error.code, message: error.message, id: c.id, retryAfter: error.retryAfter))
            }
        case .streamResume(let c):
            do {
                let stream = try await chat.stream(id: c.streamId, userId: user)
                record(.streamResumed, user, id, stream.id)
                await post(id, .ack(Ack(id: c.id, streamId: stream.id, conversationId: stream.conversationId)))
                let delivery = Delivery(chat: chat, stream: stream, owned: false, stopAt: stopAt, keepAlive: limits.keepAliveInterval)
                _ = await delivery.run(after: c.after) { await post(id, $0) }
            } catch {
                record(.streamResumed, user, id, c.streamId, refusal: error.code)
                await sendError(id, ErrorEvent(code: error.code, message: error.message, id: c.id, streamId: c.streamId))
            }
        case .streamCancel(let c):
            do {
                try await chat.cancel(streamId: c.streamId, userId: user)
                record(.streamCancelled, user, id, c.streamId)
                await post(id, .ack(Ack(id: c.id, streamId: c.streamId)))
            } catch {
                record(.streamCancelled, user, id, c.streamId, refusal: error.code)
                await sendError(id, ErrorEvent(code: error.code, message: error.message, id: c.id, streamId: c.streamId))
            }
        case .authRefresh(let c):
            do throws(AuthError) {
                let fresh = try await verifier.verify(c.token)
                guard fresh.userId == user else {
                    await sendError(id, ErrorEvent(code: .unauthorized, message: "The new token names a different user.", id: c.id))
                    return
                }
                do {
                    guard try await connections.refreshGatewayConnection(id: id, expiresAt: fresh.expiresAt) else { return }
                } catch {
                    await sendError(id, ErrorEvent(code: .storageUnavailable, message: "Storage is unavailable; try again.", id: c.id))
                    return
                }
                connection.expiresAt = fresh.expiresAt
                await post(id, .ack(Ack(id: c.id, expiresAt: fresh.expiresAt.timeIntervalSince1970)))
            } catch {
                await sendError(id, ErrorEvent(code: error.errorCode, message: error.message, id: c.id))
            }
        case .ping(let c):
            await post(id, .ack(Ack(id: c.id)))
        }
    }

    /// Adds what the connection's user did to the audit trail.
    private func record(_ action: AuditEvent.Action, _ user: String, _ channel: String, _ record: String?, refusal: ErrorCode? = nil) {
        let outcome: AuditEvent.Outcome = refusal.map { $0.httpStatus >= 500 ? .failed : .refused } ?? .success
        audit.record(AuditEvent(action: action, userId: user, channelId: channel, record: record, outcome: outcome, reason: refusal?.rawValue))
    }

    private func sendError(_ id: String, _ error: ErrorEvent) async {
        metrics.error(error.code.rawValue)
        await post(id, .error(error))
    }

    /// Posts `event` to connection `id`; `false` once the client is gone (410) or unreachable.
    @discardableResult
    private func post(_ id: String, _ event: ServerEvent) async -> Bool {
        do {
            return try await management.post(connectionId: id, Data(event.jsonString().utf8)) == .delivered
        } catch {
            logger.warning("lambda.post.failed", metadata: ["ws.id": "\(id)", "error": "\(error)"])
            return false
        }
    }
}
