import Hummingbird
import MedViewCore
import MedViewProtocol

/// Authenticates `/v1` requests with `Authorization: Bearer <jwt>`; anything else is a typed 401.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let verifier: any TokenVerifier
    let audit: any AuditSink
    /// Told when a request is authenticated.
    var connections: UnauthenticatedConnections? = nil

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Self.bearerToken(request.headers[.authorization]) else {
            refused(.unauthorized, context)
            throw APIError(.unauthorized, AuthError.missing.message)
        }
        var context = context
        do {
            context.identity = try await verifier.verify(token)
        } catch {
            refused(error.errorCode, context)
            throw APIError(error.errorCode, error.message)
        }
        connections?.authenticated(context.channel)
        return try await next(request, context)
    }

    private func refused(_ code: ErrorCode, _ context: Context) {
        audit.record(AuditEvent(action: .signInRefused, channelId: context.id, sourceAddress: context.sourceAddress, outcome: .refused, reason: code.rawValue))
    }

    /// The token of an `Authorization: Bearer …` header value.
    static func bearerToken(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingScalars(where: \.isSpaceOrTab)
        return token.isEmpty ? nil : token
    }
}
