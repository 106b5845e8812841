import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import MedViewCore
import NIOCore
import Synchronization

/// Verifies Amazon Cognito user-pool tokens (RS256 JWTs): the signature against the pool's
/// published keys (JWKS), the issuer, the expiry, and the app client (`client_id` of an access
/// token, `aud` of an id token, told apart by `token_use`).
///
/// The keys are fetched once and cached. A token signed with a key id the cache does not know
/// (Cognito rotated its keys) fetches the set again, at most once per `minimumRefreshInterval`,
/// so a flood of forged key ids cannot turn into a flood of requests to Cognito.
public final class CognitoTokenVerifier: TokenVerifier {
    /// Returns the JWKS document (JSON bytes).
    public typealias FetchKeys = @Sendable () async throws -> Data

    /// The JWKS could not be fetched or read. Carries no token.
    public struct KeysUnavailable: Error, CustomStringConvertible {
        public var description: String
    }

    private struct Cache {
        var keys: JWTKeyCollection?
        var kids: Set<String> = []
        var fetchedAt: ContinuousClock.Instant?
        var refreshing: Task<Void, Never>?
        var fetches = 0
    }

    struct Header: Decodable {
        var alg: String?
        var kid: String?
    }

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var tokenUse: String
        var clientId: String?
        var aud: AudienceClaim?
        var iat: IssuedAtClaim?
        var nbf: NotBeforeClaim?

        enum CodingKeys: String, CodingKey {
            case iss, sub, exp, aud, iat, nbf
            case tokenUse = "token_use"
            case clientId = "client_id"
        }

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            try TokenTimeChecks.verify(notBefore: nbf, issuedAt: iat)
        }
    }

    /// The settings this verifier checks tokens against.
    public let settings: CognitoSettings
    private let fetchKeys: FetchKeys
    private let minimumRefreshInterval: Duration
    private let logger: Logger
    private let cache = Mutex(Cache())
    /// Tokens already verified (``VerifiedTokenCache``).
    private let verified = VerifiedTokenCache()

    /// - Parameters:
    ///   - fetchKeys: how to get the JWKS; by default an HTTP GET of `settings.jwksURL`.
    ///   - minimumRefreshInterval: the shortest time between two fetches of the key set.
    public init(settings: CognitoSettings, fetchKeys: FetchKeys? = nil, minimumRefreshInterval: Duration = .seconds(30), logger: Logger) {
        self.settings = settings
        self.fetchKeys = fetchKeys ?? Self.httpFetcher(url: settings.jwksURL)
        self.minimumRefreshInterval = minimumRefreshInterval
        self.logger = logger
    }

    /// A fetcher that GETs `url` with the shared HTTP client (10 s timeout, at most 1 MiB).
    public static func httpFetcher(url: String, client: HTTPClient = .shared) -> FetchKeys {
        {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await client.execute(request, timeout: .seconds(10))
            guard response.status == .ok else {
                throw KeysUnavailable(description: "JWKS answered HTTP \(response.status.code)")
            }
            let body = try await response.body.collect(upTo: 1 << 20)
            return Data(body.readableBytesView)
        }
    }

    /// Fetches the key set now (at start-up, so the first sign-in does not wait for it).
    /// Returns how many usable keys it holds; throws when there are none.
    @discardableResult
    public func prefetch() async throws -> Int {
        await refresh()
        let count = cache.withLock { $0.kids.count }
        guard count > 0 else { throw KeysUnavailable(description: "no usable RS256 keys at \(settings.jwksURL)") }
        return count
    }

    /// How many times the key set has been fetched (for tests and diagnostics).
    public var keyFetches: Int { cache.withLock { $0.fetches } }

    public func verify(_ token: String) async throws(AuthError) -> VerifiedIdentity {
        guard !token.isEmpty else { throw .missing }
        if let known = verified.identity(for: token) { return known }
        guard token.utf8.count <= 16 * 1024, let header = Self.header(of: token),
              header.alg == "RS256", let kid = header.kid, !kid.isEmpty, kid.utf8.count <= 256 else {
            throw .invalid
        }
        guard let keys = await keys(for: kid) else { throw .invalid }
        let claims: Claims
        do {
            claims = try await keys.verify(token, as: Claims.self)
        } catch let error as JWTError where error.errorType == .claimVerificationFailure && error.failedClaim is ExpirationClaim {
            throw .expired
        } catch {
            throw .invalid
        }
        guard claims.iss.value == settings.issuer, !claims.sub.value.isEmpty else { throw .invalid }
        switch claims.tokenUse {
        case "access":
            guard claims.clientId == settings.clientId else { throw .invalid }
        case "id":
            guard claims.aud?.value.contains(settings.clientId) == true else { throw .invalid }
        default:
            throw .invalid
        }
        let identity = VerifiedIdentity(userId: claims.sub.value, expiresAt: claims.exp.value, issuer: settings.issuer)
        verified.remember(token, as: identity)
        return identity
    }

    // MARK: - Keys

    /// The key collection when it holds `kid`, fetching the set again if it does not (rate-limited).
    private func keys(for kid: String) async -> JWTKeyCollection? {
        let (hit, wait) = cache.withLock { c -> (JWTKeyCollection?, Task<Void, Never>?) in
            if let keys = c.keys, c.kids.contains(kid) { return (keys, nil) }
            if let running = c.refreshing { return (nil, running) }
            if let at = c.fetchedAt, ContinuousClock.now - at < minimumRefreshInterval { return (nil, nil) }
            let task = Task { await self.refresh() }
            c.refreshing = task
            return (nil, task)
        }
        if let hit { return hit }
        guard let wait else { return nil }
        await wait.value
        return cache.withLock { c in c.kids.contains(kid) ? c.keys : nil }
    }

    /// Fetches and installs the key set; on failure keeps the keys it had.
    private func refresh() async {
        let started = ContinuousClock.now
        var installed: (JWTKeyCollection, Set<String>)?
        do {
            let data = try await fetchKeys()
            let jwks = try JSONDecoder().decode(JWKS.self, from: data)
            let collection = JWTKeyCollection()
            var kids = Set<String>()
            for jwk in jwks.keys {
                guard let kid = jwk.keyIdentifier, (jwk.algorithm == nil || jwk.algorithm == .rs256) else { continue }
                do {
                    try await collection.add(jwk: jwk)
                    kids.insert(kid.string)
                } catch {
                    logger.warning("auth.jwks.key_skipped", metadata: ["jwk.kid": "\(kid.string)"])
                }
            }
            installed = (collection, kids)
            logger.info("auth.jwks.fetched", metadata: ["jwks.keys": "\(kids.count)", "duration.ms": "\(Int((ContinuousClock.now - started) / .milliseconds(1)))"])
        } catch {
            logger.warning("auth.jwks.fetch_failed", metadata: ["error.type": "\(type(of: error))"])
        }
        cache.withLock { c in
            c.fetches += 1
            c.fetchedAt = .now
            if let installed {
                c.keys = installed.0
                c.kids = installed.1
            }
            c.refreshing = nil
        }
    }

    /// The decoded JOSE header of a compact JWT, or nil when it is not one.
    static func header(of token: String) -> Header? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = base64URLDecode(parts[0]) else { return nil }
        return try? JSONDecoder().decode(Header.self, from: data)
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
