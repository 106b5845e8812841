import Foundation

/// A bearer token and when it expires. Its description never shows the token itself.
public struct AccessToken: Sendable, CustomStringConvertible {
    /// The JWT, sent as `Authorization: Bearer …` and in `auth.refresh`.
    public var value: String
    /// When the token stops being accepted; `nil` when unknown (the client then never renews it ahead of time).
    public var expiresAt: Date?

    /// A token with a known expiry.
    public init(_ value: String, expiresAt: Date?) {
        self.value = value
        self.expiresAt = expiresAt
    }

    /// A JWT whose expiry is read from its `exp` claim (left `nil` if the token cannot be read).
    public init(jwt value: String) {
        self.value = value
        self.expiresAt = Self.expiry(ofJWT: value)
    }

    public var description: String {
        "AccessToken(<redacted>, expiresAt: \(expiresAt.map { "\($0)" } ?? "unknown"))"
    }

    /// The `exp` claim of a JWT, or `nil` if the payload is not readable.
    static func expiry(ofJWT token: String) -> Date? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let exp = object["exp"] as? Double, exp.isFinite else { return nil }
        return Date(timeIntervalSince1970: exp)
    }
}

/// Why the client asks its token provider for a token.
public enum TokenRequestReason: Sendable, Equatable {
    /// A connection or request needs a token; a cached one that is still valid is fine.
    case connect
    /// The current token expires soon: return a renewed one (the client sends it with `auth.refresh`).
    case renew
    /// The server refused the last token (expired or invalid): return a new one or throw.
    case rejected
}

/// Where the client gets its tokens: an async closure, so an app can plug in its identity
/// provider (for example a Cognito session refresh). Throwing stops the attempt at hand; the
/// client tries again on its next reconnect.
public typealias TokenProvider = @Sendable (TokenRequestReason) async throws -> AccessToken
