import Foundation

/// How `medview serve` trusts Amazon Cognito in production: which user pool issues tokens, where
/// its signing keys are, which app client the tokens must be for, and what the web page needs to
/// sign in through the Hosted UI.
public struct CognitoSettings: Sendable, Equatable {
    /// The expected `iss` claim, `https://cognito-idp.<region>.amazonaws.com/<user pool id>`.
    public var issuer: String
    /// Where the pool's public keys (JWKS) are fetched from; by default `issuer` +
    /// `/.well-known/jwks.json`. A separate setting because stand-ins (moto) serve it elsewhere.
    public var jwksURL: String
    /// The app client id: access tokens must carry it as `client_id`, id tokens as `aud`.
    public var clientId: String
    /// The Hosted UI base URL (`https://<prefix>.auth.<region>.amazoncognito.com` or a custom
    /// domain). Without it the page cannot sign in, but API clients with tokens still work.
    public var domain: String?
    /// The page URL registered as the app client's callback (and sign-out) URL. Without it the
    /// page uses its own address (`origin + "/"`).
    public var redirectURI: String?
    /// OAuth scopes the page asks for.
    public var scopes: String
    /// Which token the page sends to the API: `access` (default) or `id`.
    public var pageTokenUse: String

    /// Why the settings cannot be used.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public init(
        issuer: String,
        jwksURL: String? = nil,
        clientId: String,
        domain: String? = nil,
        redirectURI: String? = nil,
        scopes: String = "openid email",
        pageTokenUse: String = "access"
    ) throws(Invalid) {
        let issuer = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
        guard Self.isAcceptableURL(issuer, allowLoopbackHTTP: false) else {
            throw Invalid(description: "The Cognito issuer must be an https URL such as https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123.")
        }
        let jwks = jwksURL ?? issuer + "/.well-known/jwks.json"
        guard Self.isAcceptableURL(jwks, allowLoopbackHTTP: true) else {
            throw Invalid(description: "The Cognito JWKS URL must be an https URL (plain http only on a loopback address).")
        }
        guard !clientId.isEmpty, clientId.count <= 128, clientId.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw Invalid(description: "The Cognito app client id must be 1 to 128 letters and digits.")
        }
        if let domain, !Self.isAcceptableURL(domain, allowLoopbackHTTP: true) {
            throw Invalid(description: "The Cognito Hosted UI domain must be an https URL such as https://auth.example.com (plain http only on a loopback address).")
        }
        if let redirectURI, !Self.isAcceptableURL(redirectURI, allowLoopbackHTTP: true) {
            throw Invalid(description: "The Cognito redirect URI must be an https URL (plain http only on a loopback address).")
        }
        guard pageTokenUse == "access" || pageTokenUse == "id" else {
            throw Invalid(description: "The page's token use must be 'access' or 'id'.")
        }
        self.issuer = issuer
        self.jwksURL = jwks
        self.clientId = clientId
        self.domain = domain.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.redirectURI = redirectURI
        self.scopes = scopes
        self.pageTokenUse = pageTokenUse
    }

    /// The origin (`scheme://host[:port]`) of the Hosted UI, for the page's Content-Security-Policy.
    public var domainOrigin: String? {
        guard let domain, let url = URL(string: domain), let scheme = url.scheme, let host = url.host else { return nil }
        return "\(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")
    }

    /// An absolute http(s) URL with a host; plain http only for loopback hosts when allowed.
    static func isAcceptableURL(_ string: String, allowLoopbackHTTP: Bool) -> Bool {
        guard let url = URL(string: string), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else { return false }
        if scheme == "https" { return true }
        guard scheme == "http", allowLoopbackHTTP else { return false }
        return ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased())
    }
}
