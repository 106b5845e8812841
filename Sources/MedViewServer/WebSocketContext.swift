import Foundation
import Hummingbird
import HummingbirdWebSocket
import MedViewCore
import MedViewProtocol
import NIOCore

/// Request context of the WebSocket router; ``WebSocketAuthMiddleware`` sets the identity before the upgrade.
public struct WSRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<WSRequestContext>
    /// The authenticated caller.
    public var identity: VerifiedIdentity?
    /// Whether the client offered the `medview.v1` subprotocol (it is then echoed back).
    public var offeredSubprotocol = false
    /// Why authentication failed, when it did: the socket is opened only to say so, then closed with 4401.
    public var authFailure: ErrorEvent?
    /// The client's address as this server saw it (for the audit trail).
    public let sourceAddress: String?
    /// The connection being upgraded.
    let channel: any Channel

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.sourceAddress = source.channel.remoteAddress?.ipAddress
        self.channel = source.channel
    }
}

/// Authenticates the upgrade request before the WebSocket exists.
///
/// Non-browser clients send `Authorization: Bearer <jwt>`. Browsers, which cannot set headers on a
/// WebSocket, offer two subprotocols: `medview.v1` and `medview.bearer.<jwt>`; the server answers
/// with `medview.v1` only, so the token is never echoed, and it never appears in a URL.
///
/// A failed check does not refuse the upgrade: hummingbird-websocket answers every refused upgrade
/// with an empty 400, and browsers cannot read upgrade statuses at all. Instead the socket opens
/// only to carry one typed `error` (`unauthorized` or `token_expired`) and closes with 4401; no
/// command is ever read on it.
struct WebSocketAuthMiddleware: RouterMiddleware {
    typealias Context = WSRequestContext
    let verifier: any TokenVerifier
    /// Told when the upgrade is authenticated.
    let connections: UnauthenticatedConnections?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let offer = UpgradeCredentials(authorization: request.headers[.authorization], subprotocolHeaders: request.headers[values: .secWebSocketProtocol])
        context.offeredSubprotocol = offer.offeredSubprotocol
        if let failure = offer.failure {
            context.authFailure = failure
            return try await next(request, context)
        }
        let token = offer.token
        if let token, !token.isEmpty {
            do {
                context.identity = try await verifier.verify(token)
                connections?.authenticated(context.channel)
            } catch {
                context.authFailure = ErrorEvent(code: error.errorCode, message: error.message)
            }
        } else {
            context.authFailure = ErrorEvent(code: .unauthorized, message: AuthError.missing.message)
        }
        return try await next(request, context)
    }
}

/// The token of a WebSocket upgrade, wherever the client put it: `Authorization: Bearer <jwt>`,
/// or (browsers, which cannot set headers on a WebSocket) the subprotocol entry
/// `medview.bearer.<jwt>` offered together with `medview.v1`. The server answers with
/// `medview.v1` only, so the token is never echoed. Shared by `medview serve` and the Lambda
/// function's `$connect`.
package struct UpgradeCredentials: Sendable {
    /// The token found, if any.
    package var token: String?
    /// Whether the client offered `medview.v1` (the answer then names it).
    package var offeredSubprotocol: Bool
    /// Set when the offer is malformed (a bearer entry without `medview.v1`).
    package var failure: ErrorEvent?

    /// - Parameter subprotocolHeaders: every `Sec-WebSocket-Protocol` header value (each a comma-separated list).
    package init(authorization: String?, subprotocolHeaders: [String]) {
        let offered = subprotocolHeaders
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        offeredSubprotocol = offered.contains(ProtocolLimits.subprotocol)
        token = AuthMiddleware.bearerToken(authorization)
        if token == nil, let entry = offered.first(where: { $0.hasPrefix(ProtocolLimits.bearerSubprotocolPrefix) }) {
            guard offeredSubprotocol else {
                failure = ErrorEvent(code: .unauthorized, message: "Offer the `\(ProtocolLimits.subprotocol)` subprotocol with the bearer entry.")
                return
            }
            token = String(entry.dropFirst(ProtocolLimits.bearerSubprotocolPrefix.count))
        }
    }
}
