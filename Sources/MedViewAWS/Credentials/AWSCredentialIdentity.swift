import Foundation

/// Credentials as a provider hands them out: the keys, when they expire, and where they came from.
///
/// `description` shows the access key id and the source only.
public struct AWSCredentialIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The keys to sign with.
    public var credentials: SigV4Credentials
    /// When temporary credentials stop working; `nil` for long-term keys.
    public var expiration: Date?
    /// The source, for logs (`environment`, `profile default`, `container`, `instance metadata`, `web identity`).
    public var source: String

    /// Credentials from `source`.
    public init(credentials: SigV4Credentials, expiration: Date? = nil, source: String) {
        self.credentials = credentials
        self.expiration = expiration
        self.source = source
    }

    public var description: String {
        "AWSCredentialIdentity(accessKeyID: \(credentials.accessKeyID), source: \(source), expiration: \(expiration.map { "\($0)" } ?? "none"))"
    }
}

/// Something that hands out AWS credentials.
///
/// A source that is not configured at all returns `nil`, so a chain moves on to the next one; a
/// source that is configured but fails throws, naming itself.
public protocol AWSCredentialProvider: Sendable {
    /// A short name for logs and errors.
    var name: String { get }
    /// The credentials, `nil` if this source is not configured.
    func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity?
}
