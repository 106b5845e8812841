import Foundation
import JWTKit
import MedViewCore

/// The development token issuer: an ES256 key kept in the data directory that signs and verifies
/// tokens for local use. The server accepts its tokens only in development mode.
public final class DevTokenIssuer: TokenVerifier {
    /// The `iss` claim of development tokens.
    public static let issuer = "medview-dev"
    /// The `aud` claim of development tokens.
    public static let audience = "medview"
    /// File name of the signing key inside the data directory.
    public static let keyFileName = "dev-issuer-key.pem"

    private let keys: JWTKeyCollection
    /// Tokens already verified (``VerifiedTokenCache``).
    private let verified = VerifiedTokenCache()
    private let kid: JWKIdentifier
    /// Where the key is stored.
    public let keyPath: String

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var nbf: NotBeforeClaim?

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            try TokenTimeChecks.verify(notBefore: nbf, issuedAt: iat)
            guard iss.value == DevTokenIssuer.issuer else { throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "issuer") }
            try aud.verifyIntendedAudience(includes: DevTokenIssuer.audience)
        }
    }

    private init(keys: JWTKeyCollection, kid: JWKIdentifier, keyPath: String) {
        self.keys = keys
        self.kid = kid
        self.keyPath = keyPath
    }

    /// Loads the key from `dataDirectory`, creating it (mode 0600, in a directory created 0700)
    /// on first use.
    /// - Throws: ``StartupError`` if the key file can be read or written by other users (any
    ///   group or other permission bit): a key others can read lets them sign in as anyone.
    public static func load(dataDirectory: String) async throws -> DevTokenIssuer {
        let fm = FileManager.default
        if !fm.fileExists(atPath: dataDirectory) {
            try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let path = (dataDirectory as NSString).appendingPathComponent(keyFileName)
        let key: ES256PrivateKey
        if let attributes = try? fm.attributesOfItem(atPath: path), let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            throw StartupError(description: "the development signing key \(path) is readable or writable by other users (mode \(String(mode & 0o777, radix: 8))); anyone who can read it can sign in as any user. Run `chmod 600 \(path)` (or delete it to make a new one), then start again.")
        }
        if let pem = try? String(contentsOfFile: path, encoding: .utf8) {
            key = try ES256PrivateKey(pem: pem)
        } else {
            key = ES256PrivateKey()
            let created = fm.createFile(atPath: path, contents: Data(key.pemRepresentation.utf8), attributes: [.posixPermissions: 0o600])
            guard created else { throw CocoaError(.fileWriteUnknown) }
        }
        let kid = JWKIdentifier(string: "dev-1")
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: kid)
        return DevTokenIssuer(keys: keys, kid: kid, keyPath: path)
    }

    /// Signs a token for `userId` valid for `lifetime`.
    public func token(userId: String, lifetime: Duration = .seconds(3600), now: Date = Date()) async throws -> String {
        let seconds = Double(lifetime.components.seconds) + Double(lifetime.components.attoseconds) / 1e18
        let claims = Claims(
            iss: .init(value: Self.issuer),
            sub: .init(value: userId),
            aud: .init(value: [Self.audience]),
            exp: .init(value: now.addingTimeInterval(seconds)),
            iat: .init(value: now),
            nbf: nil
        )
        return try await keys.sign(claims, kid: kid)
    }

    public func verify(_ token: String) async throws(AuthError) -> VerifiedIdentity {
        guard !token.isEmpty else { throw .missing }
        if let known = verified.identity(for: token) { return known }
        do {
            let claims = try await keys.verify(token, as: Claims.self)
            guard !claims.sub.value.isEmpty else { throw AuthError.invalid }
            let identity = VerifiedIdentity(userId: claims.sub.value, expiresAt: claims.exp.value, issuer: Self.issuer)
            verified.remember(token, as: identity)
            return identity
        } catch let error as JWTError where error.errorType == .claimVerificationFailure && error.failedClaim is ExpirationClaim {
            throw .expired
        } catch {
            throw .invalid
        }
    }
}
