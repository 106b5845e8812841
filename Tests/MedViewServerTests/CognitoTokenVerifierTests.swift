import Foundation
import JWTKit
import Logging
import MedViewCore
import MedViewServer
import Synchronization
import Testing

/// The Cognito verifier against tokens shaped like Cognito's (RS256, `token_use`, `client_id` /
/// `aud`), signed with test keys whose public halves it gets from a JWKS fetcher under test control.
/// (Real moto-issued tokens against the real binary: Tests/python/test_cognito_auth.py.)
@Suite struct CognitoTokenVerifierTests {
    static let issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
    static let clientId = "testclient123"

    /// Two throwaway RSA keys, generated for these tests with `openssl genrsa 2048`.
    static let keyA = """
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDEt+/cIjiQ+dcY
Xd7jErDhNW/eIOdLhCjUHt2NSmCQaa72KmlB47mZCy29sFlbRMSjl45srtlgsZc5
yIiNDJJXG8eQP2eCt051xU2aJUItHJVoZbj/+TwPZQCxtzI7V8gSgB2nzF8Hdhnf
KU/5sR1B7tWxIcLp96zgiUUY7biEC23VLTcULPAB9MxaeKTmSlqBV+aEFtgVEu24
K+UcmmpANXfhFaFk8lZXDPSZHCDJQ3XSKpb+wKOZscGIBZEdHhd2RuMGCVSFTEO3
QrrCf4AdG92i1Ft6Bsu0HY01M6IciQiub7D6Bcph6Jvudv1egFI4JjeyRi5pAm+A
/GCLW/m1AgMBAAECggEATseQtbo4qAp98uKo34v9LPuO9Mh9iDcBeM1xkWM/X6YL
LMcYRwxRJ/Kbm1MTveLA0vjfTzQIltoYA0qFMONfeaYE2gYiSG1rbOuaY8hXA6Tm
SpwuJciknk+nIwSIB87kL1CCT9AfIGhR/RZY0lh1LJHenySzn6oR4AvpEY4l7i7H
xCOwjJvfsFDLAJuyMwQ3d3QzU4MA9QKiiqZ6Kwy+yFPLxr5lQ+ee8iB5iL/hU4SZ
x2Rnx4dbwCS8vEk1xBIpjZ5OGqBAfzUenZvFOLsekHq/gg/l28yCSy6iAT/t5MNH
VRMWYbJuHPqqJQCenGSLm1RGG/W/6//ov53vJ+KuYwKBgQDkpnHD16HTMvxRp0NC
+ZVMYtScj3T2HZ6/8hEvPTKn20VCd8A3LtRZ5asBIUghvkDrAPe2qg4PB2RPEUpk
2BYZPi7p1uun8Saq8Mif2GpPSXWRkmjpCCqeGJhbMIM5mjwimjMvCBArLgVZ5FYf
DJ6wnS/eV/xdPZceQBLq7n4tJwKBgQDcP7Rn530jDxlMcAGL5i1/lOBsODIJw1UH
Ws8//qN9bDROOHMU7cR+fwPCbCnAzup54lv0LRXEP9FHejp/OGLDV0YbndSosm1b
7CNzqCCeng7K2+KjMZAJgEIoqRMlqZ9GkowYofuh2g9YVzAN7KR87SpucEy8FDOK
krAqlNrjwwKBgQDCDRCYKTVJzQefNNk8yh0PSwEuLgIRrmnAdWxoLwQCuXE6S+9x
5eiKswRCXUCegp0N1TBmckSkNJ3JDN+aXlnC6qdeBezSBzPN97QNFNqEl8+T0DIB
M9EXg8AqBC4agO9wXnX6AFnYi6I2/Daq+0bilUS+6uVfLJpILhDgGbA0GQKBgC3c
HeZcrxOzuyLNV6UXonWkPC6MbO7Xe0byw6Chls0w0JtQ6bV75KQqMlAzUWZSL0R9
u4PWN2gLmbn2W2POC9J8w55QeM0/icHQI3mbkl80rgPTUReF5GX2DNCGk/QNo5qA
PSeL4udKjlNopBriIUXZ5DHmtDOdSTYbYQ8cu48dAoGBAJkKAi78sLgEhwdQXGJN
/i8j5Wtet2xfQn8yGeaJ9T4tor9KiJkQe19GPSzWDP99shZBjKA15qFUySfGsBR/
vs1Btkji8eRzttT7D2DfsKaiJWZ94Fie/M1SbfoqEyovf+Pri+dlTlUJ1Qqbhsbt
QIT5AIt8raNNegyn4EZ9KctW
-----END PRIVATE KEY-----
"""
    static let keyB = """
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCuVU6ruklHem73
9AzMx9kis7ZN/a972l+E+NwKBQQQSBc4+8NdwWBMvQ7rz9rZjVp1V9+dvN9bDBUu
yi7wvLkDZwxxqXA9C4FYOOSj4bk6vZbGM4Apt/B/3VfbnEV3pCdtsAuL1uqZWqzL
qx5boqmMdnojcQ9m7O2/ub4cT36Ca5cf/p6zx04jNhXmCHUJ360hBKmLlCGkhMCI
GPAb4SRIWAAjeVxN8cuPD9edIm07yrckRBVhKWyXDfQxGJ0WjOWjOkHiybjl+ibA
m/QnFrMdnnO7VhHy3ck9pg6/7dOs1h5MqgWaML0qF70/bDphRVAoAC7rkBs7EnRi
zhoKun5JAgMBAAECggEACo5235Y9trrWumQIXGQjpWLNgMaCWFUeYJ5zMJYiK1w6
L8SrDWPW0X7HRwdEoNTa6+0gyNv1iH1gUP+EPSaoa2jTi5Rvi/rE39M+ISBbh4+Q
cDsRITWWth9woQdC+54wlwdIg7TFavjfKswXYAQnES7hcYD4pkplkS0NsogryHji
yhBq1Beb6b18XLP8YUxmSo2S/lgc/bgRIPtV0JZhKqNBvvW7wcE1Z7vwYZ7ysLy1
fZzdrnKnrOmtLu8btgeHKpkOa1ttFRZVk/et/yE70L2O6TYvsmAIfIPO84apkqtw
vbLgESXFF/Inkwvn0sVsoB6VpswWw7RnpYgD2K50SwKBgQDaSEzx/gjPn4am4OEc
jhdRPPBF0t5oVKCDXnZh1fAeBfbN/rWXXH4Bmn599wFd1XHCqQtPd/43fEjxYLkp
5fdjs7rkW+/ZNFAZxF8Mijn0xiFKYM14nn4SYyFJO2KKo3GhHa78AbbIP4bESrsf
yFPBfHzZypsRCppYUr301tT//wKBgQDMdOtBRXCRdQxqVMQxBL9ScY3ra1ud6DDy
4OePaDcIEHzYVaGAZ3jPaPNEETDw+OqI7P2qLzPodvYH5yhZzAhqeo/5nAUIl1my
AnJBUsrQV1X2kYU32qHojcyzPYuyvm7x7xw1r3Om0L9Bcyk555hZcrM+lz/VNZYu
EIlU3IiBtwKBgFsanArQRSsq4M9bwnjhkTfV4E60MSGIWKobzfsNiLdvM9BMQ8xV
zT2sFqlKY6afRGjDlzXm1hKga+1auk2TbsqNJC7VdGjKXbgzbpxUQNY5r4FUn819
EQ9pkmX3RCyrBO0C75q8uGYhpYTdz/X27YYvCAj6d/gH3d2JQ0EiPSpPAoGAfMd6
cFptyggybI6RMg1gqnMtFxltT6DOhtxl1irXMy/E0c7pAtGjdInrtYX8ZYS0tp5U
bdHjDyPTIZ2dDbitBjcIuWDT3ZtpHW/KxT0/FAnJJ/NF54GiQKiR3m5YXN1GHpc8
kzMiFRPfNZWP+ovyedy7sh5i0b+jiTeEaOsy0F8CgYAwvZThxv2I552PGC15gGOQ
BU758zMxUDk9CoxYPNtiBmWSPmffb8dNP6W4Mvhr0ct9LKhbF/fCoCmv3U3sU163
qtAy7YwYrVZipEgbKQ9I2M3VHVJ4uQPyFITmKJKKGKjp2qFIBImO+BTqhRWCF/ib
LOoi27vQZwYF9CvIGuoGRQ==
-----END PRIVATE KEY-----
"""

    struct Claims: JWTPayload {
        var iss: String
        var sub: String
        var exp: Date
        var iat: Date
        var tokenUse: String
        var clientId: String?
        var aud: String?

        enum CodingKeys: String, CodingKey {
            case iss, sub, exp, iat, aud
            case tokenUse = "token_use"
            case clientId = "client_id"
        }

        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Signs test tokens and serves the JWKS the verifier fetches; counts fetches.
    final class Pool: Sendable {
        let published = Mutex<[(kid: String, pem: String)]>([])
        let fetches = Mutex(0)

        func publish(_ keys: [(kid: String, pem: String)]) {
            published.withLock { $0 = keys }
        }

        func jwks() throws -> Data {
            fetches.withLock { $0 += 1 }
            var keys: [[String: String]] = []
            for (kid, pem) in published.withLock({ $0 }) {
                let (n, e) = try Insecure.RSA.PrivateKey(pem: pem).publicKey.getKeyPrimitives()
                keys.append(["kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": Self.base64URL(n), "e": Self.base64URL(e)])
            }
            return try JSONSerialization.data(withJSONObject: ["keys": keys])
        }

        static func base64URL(_ data: Data) -> String {
            data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }

        func sign(_ claims: Claims, kid: String, pem: String) async throws -> String {
            let keys = JWTKeyCollection()
            await keys.add(rsa: try Insecure.RSA.PrivateKey(pem: pem), digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
            return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
        }
    }

    static func claims(use: String = "access", sub: String = "user-1", iss: String = issuer, clientId: String? = clientId, aud: String? = nil, lifetime: TimeInterval = 600) -> Claims {
        let now = Date()
        return Claims(iss: iss, sub: sub, exp: now.addingTimeInterval(lifetime), iat: now.addingTimeInterval(min(0, lifetime) - 60), tokenUse: use, clientId: use == "access" ? clientId : nil, aud: use == "id" ? (aud ?? Self.clientId) : nil)
    }

    static func verifier(_ pool: Pool, refresh: Duration = .seconds(30)) throws -> CognitoTokenVerifier {
        let settings = try CognitoSettings(issuer: issuer, jwksURL: "http://127.0.0.1:9/jwks.json", clientId: clientId)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return CognitoTokenVerifier(settings: settings, fetchKeys: { try pool.jwks() }, minimumRefreshInterval: refresh, logger: logger)
    }

    static func refusal(_ verifier: CognitoTokenVerifier, _ token: String) async -> AuthError? {
        do {
            _ = try await verifier.verify(token)
            return nil
        } catch {
            return error
        }
    }

    @Test("access and id tokens for the configured pool and app client are accepted; the user is the subject")
    func accepts() async throws {
        let pool = Pool()
        pool.publish([("a", Self.keyA)])
        let verifier = try Self.verifier(pool)
        let accessClaims = Self.claims(use: "access")
        let access = try await verifier.verify(try await pool.sign(accessClaims, kid: "a", pem: Self.keyA))
        #expect(access.userId == "user-1")
        #expect(access.issuer == Self.issuer)
        // The token's own expiry, compared with the claim rather than the clock:
        // a busy machine may take minutes to get here.
        #expect(abs(access.expiresAt.timeIntervalSince(accessClaims.exp)) < 1)
        let id = try await verifier.verify(try await pool.sign(Self.claims(use: "id", sub: "user-2"), kid: "a", pem: Self.keyA))
        #expect(id.userId == "user-2")
        #expect(pool.fetches.withLock { $0 } == 1) // the key set is cached
    }

    @Test("expired, wrong-issuer, wrong-client, wrong-audience, unknown-use and forged tokens are refused")
    func refuses() async throws {
        let pool = Pool()
        pool.publish([("a", Self.keyA)])
        let verifier = try Self.verifier(pool)
        func signed(_ claims: Claims, pem: String = Self.keyA) async throws -> String {
            try await pool.sign(claims, kid: "a", pem: pem)
        }
        #expect(await Self.refusal(verifier, try await signed(Self.claims(lifetime: -5))) == .expired)
        #expect(await Self.refusal(verifier, try await signed(Self.claims(iss: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"))) == .invalid)
        #expect(await Self.refusal(verifier, try await signed(Self.claims(use: "access", clientId: "someoneelse"))) == .invalid)
        #expect(await Self.refusal(verifier, try await signed(Self.claims(use: "access", clientId: nil))) == .invalid)
        #expect(await Self.refusal(verifier, try await signed(Self.claims(use: "id", aud: "someoneelse"))) == .invalid)
        #expect(await Self.refusal(verifier, try await signed(Self.claims(use: "refresh"))) == .invalid)
        #expect(await Self.refusal(verifier, try await signed(Self.claims(sub: ""))) == .invalid)
        // Same kid, another key: a forgery.
        #expect(await Self.refusal(verifier, try await signed(Self.claims(), pem: Self.keyB)) == .invalid)
        #expect(await Self.refusal(verifier, "") == .missing)
        #expect(await Self.refusal(verifier, "not.a.jwt") == .invalid)
    }

    @Test("a token with alg none or HS256 is refused without trying the keys")
    func algorithms() async throws {
        let pool = Pool()
        pool.publish([("a", Self.keyA)])
        let verifier = try Self.verifier(pool)
        let good = try await pool.sign(Self.claims(), kid: "a", pem: Self.keyA)
        _ = try await verifier.verify(good)
        let parts = good.split(separator: ".")
        for alg in ["none", "HS256", "RS512"] {
            let header = Pool.base64URL(Data(#"{"alg":"\#(alg)","kid":"a","typ":"JWT"}"#.utf8))
            #expect(await Self.refusal(verifier, "\(header).\(parts[1]).\(parts[2])") == .invalid)
            #expect(await Self.refusal(verifier, "\(header).\(parts[1]).") == .invalid)
        }
        #expect(pool.fetches.withLock { $0 } == 1)
    }

    @Test("after a key rotation, a token with the new key id fetches the key set again and is accepted")
    func rotation() async throws {
        let pool = Pool()
        pool.publish([("a", Self.keyA)])
        let verifier = try Self.verifier(pool, refresh: .zero)
        _ = try await verifier.verify(try await pool.sign(Self.claims(), kid: "a", pem: Self.keyA))
        #expect(pool.fetches.withLock { $0 } == 1)
        pool.publish([("a", Self.keyA), ("b", Self.keyB)])
        let rotated = try await verifier.verify(try await pool.sign(Self.claims(sub: "user-3"), kid: "b", pem: Self.keyB))
        #expect(rotated.userId == "user-3")
        #expect(pool.fetches.withLock { $0 } == 2)
        _ = try await verifier.verify(try await pool.sign(Self.claims(), kid: "b", pem: Self.keyB))
        #expect(pool.fetches.withLock { $0 } == 2)
    }

    @Test("unknown key ids refetch the key set at most once per refresh interval")
    func unknownKidIsRateLimited() async throws {
        let pool = Pool()
        pool.publish([("a", Self.keyA)])
        let verifier = try Self.verifier(pool, refresh: .seconds(3600))
        _ = try await verifier.verify(try await pool.sign(Self.claims(), kid: "a", pem: Self.keyA))
        for i in 0..<20 {
            let forged = try await pool.sign(Self.claims(), kid: "unknown-\(i)", pem: Self.keyB)
            #expect(await Self.refusal(verifier, forged) == .invalid)
        }
        #expect(pool.fetches.withLock { $0 } == 1)
    }

    @Test("settings: the issuer must be https; JWKS, domain and redirect may be plain http on loopback only")
    func settingsValidation() throws {
        #expect(throws: CognitoSettings.Invalid.self) { try CognitoSettings(issuer: "http://cognito-idp.us-east-1.amazonaws.com/p", clientId: "abc") }
        #expect(throws: CognitoSettings.Invalid.self) { try CognitoSettings(issuer: Self.issuer, jwksURL: "http://example.com/jwks.json", clientId: "abc") }
        #expect(throws: CognitoSettings.Invalid.self) { try CognitoSettings(issuer: Self.issuer, clientId: "abc", domain: "http://auth.example.com") }
        #expect(throws: CognitoSettings.Invalid.self) { try CognitoSettings(issuer: Self.issuer, clientId: "a b") }
        let loopback = try CognitoSettings(issuer: Self.issuer + "/", jwksURL: "http://127.0.0.1:5000/p/.well-known/jwks.json", clientId: "abc", domain: "http://127.0.0.1:7000/")
        #expect(loopback.issuer == Self.issuer)
        #expect(loopback.domainOrigin == "http://127.0.0.1:7000")
        #expect(try CognitoSettings(issuer: Self.issuer, clientId: "abc").jwksURL == Self.issuer + "/.well-known/jwks.json")
    }
}
