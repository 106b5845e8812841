import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// A request context that keeps the client's address (the events' `sourceIp`).
struct StandInRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The client's IP address.
    let sourceIP: String

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.sourceIP = source.channel.remoteAddress?.ipAddress ?? "127.0.0.1"
    }
}

extension LambdaStandIn {
    /// API Gateway's largest WebSocket frame (32 KB): larger client frames close with 1009, and
    /// posts are delivered in frames of this size.
    static let frameSizeLimit = 32 * 1024

    /// What `$connect` decided.
    enum ConnectDecision: Equatable {
        /// Upgrade, answering with these headers.
        case accept(HTTPFields)
        /// Refuse with this status (the log says why).
        case refuse(status: Int, reason: String)
    }

    /// The WebSocket API and its Management API on one listener, as on API Gateway's domain.
    func gatewayApplication(onListening: @escaping @Sendable (Int) -> Void) -> some ApplicationProtocol {
        let router = Router(context: StandInRequestContext.self)
        router.on("**", method: .post) { request, context in try await self.manage(request, context: context) }
        router.on("**", method: .get) { request, context in try await self.manage(request, context: context) }
        router.on("**", method: .delete) { request, context in try await self.manage(request, context: context) }
        let webSocket = WebSocketServerConfiguration(maxFrameSize: Self.frameSizeLimit, autoPing: .disabled)
        let refusals = UpgradeRefusalStatus()
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [UpgradeRefusalStatus.Handler(refusals)])
        return Application(
            router: router,
            server: HTTPServerBuilder { responder in
                TrackedChildChannel(
                    base: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: .init(http1: http1, ws: webSocket)) { head, channel, _ in
                        let sourceIP = channel.remoteAddress?.ipAddress ?? "127.0.0.1"
                        let result = await self.upgrade(head, sourceIP: sourceIP)
                        if case .refuse(let status, _) = result.decision { refusals.refuse(channel, status: status) }
                        return result.upgrade
                    },
                    channels: self.gatewayChannels
                )
            },
            configuration: .init(address: .hostname(configuration.host, port: 0), serverName: "lambda-standin-apigateway"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// The handshake: `$connect`, then the subprotocol rule.
    func upgrade(_ head: HTTPRequest, sourceIP: String) async -> (decision: ConnectDecision, upgrade: ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>>) {
        let headers = head.headerFields.map { (name: $0.name.rawName, value: $0.value) }
        let query = head.path.flatMap { path in path.firstIndex(of: "?").map { String(path[path.index(after: $0)...]) } }
        let context = LambdaEvents.WebSocketContext(
            connectionID: APIGatewayConnection.makeID(), connectedAt: Date(), sourceIP: sourceIP,
            userAgent: head.headerFields[.userAgent], stage: configuration.stage, apiID: configuration.apiID,
            domainName: configuration.domainName
        )
        let handshake = LambdaEvents.HandshakeRequest(headers: headers, query: query)
        let offered = head.headerFields[values: .secWebSocketProtocol]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        let decision = await connectDecision(context: context, handshake: handshake, offered: offered)
        guard case .accept(let responseHeaders) = decision else {
            if case .refuse(let status, let reason) = decision {
                logger.info("lambda.websocket.refused", metadata: ["connection.id": "\(context.connectionID)", "http.response.status_code": "\(status)", "reason": "\(reason)"])
            }
            return (decision, .dontUpgrade)
        }
        logger.info("lambda.websocket.connected", metadata: ["connection.id": "\(context.connectionID)"])
        return (decision, .upgrade(responseHeaders) { inbound, outbound, _ in
            try await self.serveConnection(context: context, handshake: handshake, inbound: inbound, outbound: outbound)
        })
    }

    /// Invokes `$connect` (if routed) and applies API Gateway's rules to its reply.
    func connectDecision(context: LambdaEvents.WebSocketContext, handshake: LambdaEvents.HandshakeRequest, offered: [String]) async -> ConnectDecision {
        var chosen: String?
        if let function = configuration.routes[LambdaStandInConfiguration.Route.connect] {
            let event = LambdaEvents.connect(context, request: handshake)
            let reply: [UInt8]
            do {
                reply = try await withIntegrationTimeout { try await self.invoke(function: function, payload: event).collect() }
            } catch let error as LambdaFunctionError {
                return .refuse(status: 502, reason: "function error \(error.errorType)")
            } catch is IntegrationTimeout {
                return .refuse(status: 504, reason: "integration timed out")
            } catch {
                return .refuse(status: 500, reason: "integration \(error)")
            }
            let object = (try? JSONSerialization.jsonObject(with: Data(reply), options: [.fragmentsAllowed])) as? [String: Any]
            let status = (object?["statusCode"] as? Int) ?? 200
            guard (200..<300).contains(status) else { return .refuse(status: status, reason: "$connect answered \(status)") }
            let replyHeaders = object?["headers"] as? [String: Any] ?? [:]
            chosen = replyHeaders.first { $0.key.lowercased() == "sec-websocket-protocol" }?.value as? String
        }
        guard !offered.isEmpty else { return .accept([:]) }
        guard let chosen, offered.contains(chosen) else { return .refuse(status: 400, reason: "no offered subprotocol in the $connect reply") }
        return .accept([.secWebSocketProtocol: chosen])
    }

    /// API Gateway's integration timeout around a synchronous invocation.
    struct IntegrationTimeout: Error, CustomStringConvertible {
        var description: String { "integration timed out" }
    }

    func withIntegrationTimeout<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = configuration.integrationTimeout
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw IntegrationTimeout()
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw IntegrationTimeout() }
            return first
        }
    }

    /// One upgraded connection: a writer for what the Management API posts, an idle watchdog,
    /// and the reader turning each message into a `$default` invocation; `$disconnect` after.
    func serveConnection(context: LambdaEvents.WebSocketContext, handshake: LambdaEvents.HandshakeRequest,
                         inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let connection = APIGatewayConnection(id: context.connectionID, sourceIP: context.sourceIP, userAgent: context.userAgent,
                                              sendBufferLimit: configuration.connectionSendBuffer, connectedAt: context.connectedAt)
        connections.withLock { $0[connection.id] = connection }
        let messageRoute = LambdaStandInConfiguration.Route.default
        let messageFunction = configuration.routes[messageRoute]
        let limit = configuration.messageSizeLimit
        var failure: (any Error)?
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await item in connection.outgoing {
                    do {
                        switch item {
                        case .text(let text):
                            try await outbound.writeTextMessage(text)
                            connection.delivered(text.utf8.count)
                        case .binary(let bytes):
                            try await outbound.writeBinaryMessage(bytes)
                            connection.delivered(bytes.readableBytes)
                        case .close(let code, let reason):
                            try await outbound.close(WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
                        }
                    } catch {
                        return
                    }
                }
            }
            if let idleTimeout = configuration.idleTimeout {
                group.addTask {
                    while !Task.isCancelled {
                        let idleUntil = ContinuousClock.now.advanced(by: idleTimeout - .seconds(Date().timeIntervalSince(connection.lastActiveAt)))
                        guard idleUntil > ContinuousClock.now else {
                            connection.close(code: 1001, reason: "Going away")
                            return
                        }
                        try? await Task.sleep(until: idleUntil, clock: .continuous)
                    }
                }
            }
            do {
                for try await message in inbound.messages(maxSize: limit) {
                    connection.touch()
                    guard let messageFunction else { continue }
                    let (body, binary): ([UInt8], Bool) = switch message {
                    case .text(let text): (Array(text.utf8), false)
                    case .binary(let buffer): (Array(buffer.readableBytesView), true)
                    }
                    let event = LambdaEvents.message(context, routeKey: messageRoute, body: body, binary: binary)
                    submit { await self.invokeAndDrain(function: messageFunction, payload: event, route: messageRoute, connectionID: context.connectionID) }
                }
            } catch {
                failure = error
            }
            group.cancelAll()
        }
        let (code, reason) = connection.ended(clientCode: failure == nil ? 1005 : 1009)
        connections.withLock { $0[connection.id] = nil }
        logger.info("lambda.websocket.disconnected", metadata: ["connection.id": "\(connection.id)", "websocket.close_code": "\(code)"])
        if let function = configuration.routes[LambdaStandInConfiguration.Route.disconnect] {
            let event = LambdaEvents.disconnect(context, request: handshake, statusCode: code, reason: reason)
            submit { await self.invokeAndDrain(function: function, payload: event, route: LambdaStandInConfiguration.Route.disconnect, connectionID: connection.id) }
        }
        if let failure { throw failure }
    }

    /// An asynchronous integration (`$default`, `$disconnect`): invoked, its reply read and dropped.
    func invokeAndDrain(function: String, payload: [UInt8], route: String, connectionID: String) async {
        do {
            let reply = try await invoke(function: function, payload: payload)
            for try await _ in reply.body {}
        } catch let error as LambdaFunctionError {
            logger.info("lambda.integration.failed", metadata: ["route.key": "\(route)", "connection.id": "\(connectionID)", "error.type": "\(error.errorType)"])
        } catch {
            logger.info("lambda.integration.failed", metadata: ["route.key": "\(route)", "connection.id": "\(connectionID)", "error.type": "\(type(of: error))"])
        }
    }
}
