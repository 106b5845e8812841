import Foundation
import Hummingbird
import Logging
import MedViewCore
import MedViewProtocol
import NIOCore

/// The HTTP + WebSocket server: routes, authentication, the web page. Built by
/// ``buildApplication(configuration:dependencies:onServerRunning:)``, which runs it beside the
/// engine's other services.
func makeHTTPServer(
    configuration: ServerConfiguration,
    chat: ChatService,
    verifier: any TokenVerifier,
    metrics: ServerMetrics,
    audit: any AuditSink,
    sweeper: SessionSweeper,
    sharedConnections: (any SharedConnectionLimit)? = nil,
    instanceId: String = "local",
    logger: Logger,
    beforeServerStarts: @escaping @Sendable () async throws -> Void,
    onServerRunning: @escaping @Sendable (Int) async -> Void
) -> some ApplicationProtocol {
    let limits = configuration.limits
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestLogContextMiddleware())
    router.get("healthz") { _, _ -> Response in
        JSONHelpers.response(["status": "ok"])
    }
    router.get("readyz") { _, _ -> Response in
        let response = await readiness(chat: chat)
        metrics.setReady(response.status == .ok)
        return response
    }
    // Without a metrics port of its own, /metrics stays on the main port (development).
    if configuration.observability.metricsPort == nil {
        addMetricsRoutes(to: router, chat: chat, metrics: metrics)
    }
    // The web chat page.
    // In production the page talks to the Cognito Hosted UI's token endpoint: the policy allows it.
    let cognito = configuration.isDevelopment ? nil : configuration.cognito
    let web = WebAssets.load(directory: configuration.webDirectory, connectSources: cognito?.domainOrigin.map { [$0] } ?? [])
    router.get("/") { request, _ -> Response in
        guard let response = web.response(for: "index.html", ifNoneMatch: request.headers[.ifNoneMatch], host: request.head.authority) else { throw APIError(.notFound, "No page.") }
        return response
    }
    router.get("static/**") { request, context -> Response in
        let path = context.parameters.getCatchAll().joined(separator: "/")
        guard let response = web.response(for: path, ifNoneMatch: request.headers[.ifNoneMatch], host: request.head.authority) else { throw APIError(.notFound, "No such file.") }
        return response
    }
    // What the page needs to know to sign in: development tokens, or the Cognito Hosted UI.
    let isDevelopment = configuration.isDevelopment
    router.get("v1/client-config") { _, _ -> Response in
        struct CognitoConfig: Encodable {
            var domain: String?
            var clientId: String
            var redirectUri: String?
            var scopes: String
            var tokenUse: String
        }
        struct ClientConfig: Encodable {
            var auth: String
            var keepAliveSeconds: Int64
            /// The patient is signed out after this long without activity (docs/WEB.md).
            var idleTimeoutSeconds: Int64
            var disclaimer: String
            var cognito: CognitoConfig?
        }
        return JSONHelpers.response(ClientConfig(
            auth: isDevelopment ? "development" : "cognito",
            keepAliveSeconds: limits.keepAliveInterval.components.seconds,
            idleTimeoutSeconds: max(1, limits.idleTimeout.components.seconds),
            disclaimer: ChatService.disclaimer,
            cognito: cognito.map { CognitoConfig(domain: $0.domain, clientId: $0.clientId, redirectUri: $0.redirectURI, scopes: $0.scopes, tokenUse: $0.pageTokenUse) }
        ))
    }
    // Development mode only: a token for any user name, so the page can sign in locally.
    if isDevelopment, let devIssuer = verifier as? DevTokenIssuer {
        router.post("v1/dev/token") { request, context -> Response in
            // Only for a request addressed to this machine by a loopback name: a page on another
            // site that rebinds its own name to 127.0.0.1 sends that name as Host, and is refused.
            guard let host = request.head.authority, HostName.isLoopback(authority: host) else {
                throw APIError(.hostNotAllowed, "Development tokens are issued only to requests addressed to localhost, 127.0.0.1 or [::1].")
            }
            struct Body: Decodable { var user: String }
            struct Answer: Encodable {
                var token: String
                var expiresAt: Double
            }
            let data = try await request.body.collect(upTo: 4096)
            let body: Body
            do {
                body = try decodeWireBody(Body.self, from: Data(data.readableBytesView))
            } catch let error as CommandDecodingError {
                throw APIError(error.code, error.message)
            }
            let user = body.user.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !user.isEmpty, user.count <= 64, user.allSatisfy({ $0.isLetter || $0.isNumber || "-_.@".contains($0) }) else {
                throw APIError(.invalidCommand, "`user` must be 1 to 64 letters, digits or -_.@ characters.")
            }
            let lifetime = Duration.seconds(3600)
            let token = try await devIssuer.token(userId: user, lifetime: lifetime)
            return JSONHelpers.response(Answer(token: token, expiresAt: Date().addingTimeInterval(3600).timeIntervalSince1970))
        }
    }
    let unauthenticated = UnauthenticatedConnections(limit: configuration.http.maxUnauthenticatedConnections)
    let api = router.group("v1")
        .add(middleware: SSEAttemptMiddleware(metrics: metrics))
        .add(middleware: AuthMiddleware(verifier: verifier, audit: audit, connections: unauthenticated))
        .add(middleware: AuditMiddleware(audit: audit))
    APIController(chat: chat, limits: limits, metrics: metrics, keepAliveTimer: SSE.keepAliveTimer(for: limits.keepAliveInterval)).addRoutes(to: api)

    let serving = WebSocketServing(
        chat: chat, verifier: verifier, limits: limits, metrics: metrics, audit: audit, sweeper: sweeper,
        connections: ConnectionLimiter(maxPerUser: limits.maxConnectionsPerUser),
        sharedConnections: sharedConnections, unauthenticated: unauthenticated, instanceId: instanceId, logger: logger
    )

    var app = Application(
        router: router,
        server: .guardedHTTP1WebSocketUpgrade(
            webSocket: serving,
            // The guard measures heads first; the parser's own limits are a backstop for
            // the bytes it cannot attribute (a pipelined request that arrived with another).
            http1: .init(httpDecoderConfiguration: .init(
                maxHeaderFieldSize: configuration.http.maxRequestLineBytes + configuration.http.maxHeaderBytes,
                maxHeaderListSize: configuration.http.maxRequestLineBytes + configuration.http.maxHeaderBytes,
                maxHeaderFieldCount: configuration.http.maxHeaderCount + 1
            )),
            maxFrameSize: limits.hardFrameBytes,
            maxMessageBytes: limits.maxFrameBytes,
            guardSettings: .init(
                limits: configuration.http,
                origins: OriginPolicy(allowedOrigins: configuration.allowedOrigins),
                unauthenticated: unauthenticated,
                metrics: metrics,
                logger: logger
            )
        ),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "medview"),
        onServerRunning: { channel in
            await onServerRunning(channel.localAddress?.port ?? configuration.port)
        },
        logger: logger
    )
    app.beforeServerStarts(perform: beforeServerStarts)
    return app
}


/// What `/readyz` answers: 200 while accepting messages with a store that reads and writes.
func readiness(chat: ChatService) async -> Response {
    guard chat.isAcceptingMessages else {
        return JSONHelpers.response(["status": "draining"], status: .serviceUnavailable)
    }
    do {
        try await chat.store.checkHealth()
    } catch {
        return JSONHelpers.response(["status": "unavailable", "store": "unreachable"], status: .serviceUnavailable)
    }
    // A store that answers reads but refuses writes (a full disk) is not ready either.
    if chat.unsaved.isFailing {
        return JSONHelpers.response(["status": "unavailable", "store": "write_failing"], status: .serviceUnavailable)
    }
    return JSONHelpers.response(["status": "ready", "store": "ok", "model": chat.model.descriptor.provider + ":" + chat.model.descriptor.id])
}

/// `GET /metrics` (Prometheus text; readiness is measured at each scrape) and
/// `GET /metrics/exact` (the benchmark's exact quantiles).
func addMetricsRoutes<Context: RequestContext>(to router: Router<Context>, chat: ChatService, metrics: ServerMetrics) {
    router.get("metrics") { _, _ -> Response in
        metrics.setReady(await readiness(chat: chat).status == .ok)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
    }
    router.get("metrics/exact") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics.renderExact())))
    }
}

/// The `/metrics` listener on its own port (`--metrics-port`), so that it never faces the
/// internet with the service.
func makeMetricsServer(configuration: ServerConfiguration, port: Int, chat: ChatService, metrics: ServerMetrics, logger: Logger, announce: @escaping @Sendable (String) -> Void) -> some ApplicationProtocol {
    let router = Router()
    addMetricsRoutes(to: router, chat: chat, metrics: metrics)
    let host = configuration.observability.metricsHost
    return Application(
        router: router,
        configuration: .init(address: .hostname(host, port: port), serverName: "medview-metrics"),
        onServerRunning: { channel in
            announce("  Metrics: http://\(host):\(channel.localAddress?.port ?? port)/metrics")
        },
        logger: logger
    )
}
