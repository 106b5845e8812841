import Hummingbird
import HummingbirdWebSocket
import MedViewCore
import MedViewProtocol

/// Request context of the WebSocket router; ``WebSocketAuthMiddleware`` sets the identity before the upgrade.
public struct WSRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<WSRequestContext>
    /// The authenticated caller.
    public var identity: VerifiedIdentity?
    /// Whether the client offered the `medview.v1` subprotocol (it is then echoed back).
    public var offeredSubprotocol = false

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
    }
}

/// Authenticates the upgrade request before any WebSocket exists.
///
/// Non-browser clients send `Authorization: Bearer <jwt>`. Browsers, which cannot set headers on a
/// WebSocket, offer two subprotocols: `medview.v1` and `medview.bearer.<jwt>`; the server answers
/// with `medview.v1` only, so the token is never echoed, and it never appears in a URL.
struct WebSocketAuthMiddleware: RouterMiddleware {
    typealias Context = WSRequestContext
    let verifier: any TokenVerifier

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        var token = AuthMiddleware.bearerToken(request.headers[.authorization])
        let offered = request.headers[values: .secWebSocketProtocol]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        context.offeredSubprotocol = offered.contains(ProtocolLimits.subprotocol)
        if token == nil, let entry = offered.first(where: { $0.hasPrefix(ProtocolLimits.bearerSubprotocolPrefix) }) {
            guard context.offeredSubprotocol else {
                throw APIError(.unauthorized, "Offer the `\(ProtocolLimits.subprotocol)` subprotocol with the bearer entry.")
            }
            token = String(entry.dropFirst(ProtocolLimits.bearerSubprotocolPrefix.count))
        }
        guard let token, !token.isEmpty else { throw APIError(.unauthorized, AuthError.missing.message) }
        do {
            context.identity = try await verifier.verify(token)
        } catch {
            throw APIError(error.errorCode, error.message)
        }
        return try await next(request, context)
    }
}
