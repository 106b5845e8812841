import Hummingbird
import MedViewCore
import NIOCore

/// The request context of every HTTP route: Hummingbird's core storage plus the caller's identity.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware``.
    public var identity: VerifiedIdentity?
    /// The client's address as this server saw it (for the audit trail).
    public let sourceAddress: String?
    /// The connection the request came on (an authenticated request takes it out of the cap on
    /// unauthenticated connections).
    let channel: any Channel

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.sourceAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The identity, or a 401 when the route was reached without one.
    func requireIdentity() throws -> VerifiedIdentity {
        guard let identity else { throw APIError(.unauthorized, "A bearer token is required.") }
        return identity
    }
}
