import Crypto
import Foundation
import MedViewAWS

/// Checks the SigV4 `Authorization` header of a request the way AWS does, with known keys.
public struct SigV4Verifier: Sendable {
    /// Why a request was refused, with the AWS error code and message to answer with (403).
    public struct Failure: Error, Sendable, Equatable {
        /// The AWS error code (`InvalidSignatureException`…), sent in `x-amzn-ErrorType`.
        public var code: String
        /// AWS's message for it.
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    /// The keys the verifier knows.
    public let credentials: SigV4Credentials
    /// The signing name required in the scope.
    public let service: String
    /// The largest clock difference accepted (AWS: 15 minutes).
    public let maxSkew: TimeInterval

    public init(credentials: SigV4Credentials, service: String, maxSkew: TimeInterval = 900) {
        self.credentials = credentials
        self.service = service
        self.maxSkew = maxSkew
    }

    /// Verifies a request. `headers` are every header as received (names in any case, `Host`
    /// included), `path` the raw path of the request target, `query` its raw query.
    /// - Returns: the region of the credential scope.
    public func verify(method: String, path: String, query: String?, headers: [(name: String, value: String)], body: [UInt8], now: Date = Date()) throws(Failure) -> String {
        guard let authorization = headers.first(where: { $0.name.lowercased() == "authorization" })?.value else {
            throw Failure(code: "MissingAuthenticationTokenException", message: "Missing Authentication Token")
        }
        let prefix = SigV4Signer.algorithm + " "
        guard authorization.hasPrefix(prefix) else {
            throw Failure(code: "IncompleteSignatureException", message: "Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
        }
        var fields: [String: String] = [:]
        for part in authorization.dropFirst(prefix.count).split(separator: ",") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { fields[kv[0]] = kv[1] }
        }
        guard let credential = fields["Credential"], let signedHeaderList = fields["SignedHeaders"], let signature = fields["Signature"] else {
            throw Failure(code: "IncompleteSignatureException", message: "Authorization header requires Credential, SignedHeaders and Signature.")
        }
        let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request" else {
            throw Failure(code: "IncompleteSignatureException", message: "Credential must have five parts.")
        }
        guard scope[0] == credentials.accessKeyID else {
            throw Failure(code: "UnrecognizedClientException", message: "The security token included in the request is invalid.")
        }
        guard scope[3] == service else {
            throw Failure(code: "InvalidSignatureException", message: "Credential should be scoped to correct service: '\(service)'.")
        }
        guard let amzDate = headers.first(where: { $0.name.lowercased() == "x-amz-date" })?.value,
              let date = Self.parseAmzDate(amzDate), amzDate.hasPrefix(scope[1])
        else { throw Failure(code: "IncompleteSignatureException", message: "X-Amz-Date is missing or does not match the credential scope.") }
        guard abs(date.timeIntervalSince(now)) <= maxSkew else {
            throw Failure(code: "InvalidSignatureException", message: "Signature expired: the request time is too far from the server time.")
        }
        if let expected = credentials.sessionToken {
            let token = headers.first(where: { $0.name.lowercased() == "x-amz-security-token" })?.value
            guard token == expected else {
                throw Failure(code: "UnrecognizedClientException", message: "The security token included in the request is invalid.")
            }
        }
        let signedNames = signedHeaderList.split(separator: ";").map(String.init)
        guard signedNames.contains("host") else {
            throw Failure(code: "InvalidSignatureException", message: "The host header must be signed.")
        }
        var signedHeaders: [SigV4Request.Header] = []
        for name in signedNames {
            let values = headers.filter { $0.name.lowercased() == name }
            guard !values.isEmpty else { throw Failure(code: "InvalidSignatureException", message: "A signed header is missing from the request.") }
            signedHeaders += values.map { SigV4Request.Header(name, $0.value) }
        }
        var queryItems: [SigV4Request.QueryItem] = []
        for piece in (query ?? "").split(separator: "&") {
            let kv = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            queryItems.append(.init(String(kv[0]).removingPercentEncoding ?? String(kv[0]), kv.count > 1 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""))
        }
        let request = SigV4Request(method: method, path: path, query: queryItems, headers: signedHeaders, payload: .bytes(body))
        let signer = SigV4Signer(service: service, region: scope[2], options: .init(unsignedHeaders: []))
        let canonical = signer.canonicalRequest(request)
        let stringToSign = SigV4Signer.stringToSign(canonicalRequest: canonical, timestamp: amzDate, scope: scope[1...4].joined(separator: "/"))
        let expected = signer.signature(stringToSign: stringToSign, secretAccessKey: credentials.secretAccessKey, day: scope[1])
        guard Self.constantTimeEqual(expected, signature) else {
            throw Failure(code: "InvalidSignatureException", message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
        }
        return scope[2]
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func parseAmzDate(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? { Int(String(decoding: bytes[range], as: UTF8.self)) }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15)
        else { return nil }
        var components = DateComponents()
        components.year = year
        components.month = month
        components.day = day
        components.hour = hour
        components.minute = minute
        components.second = second
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: components)
    }
}
