import Foundation
import MedViewProtocol

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
