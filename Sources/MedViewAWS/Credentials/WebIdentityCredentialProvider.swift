import AsyncHTTPClient
import Foundation
import NIOCore

/// Credentials for a role assumed with a web identity token (EKS IRSA and others): STS
/// `AssumeRoleWithWebIdentity`, an unsigned form POST answered in XML.
///
/// Configured by `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (session name:
/// `AWS_ROLE_SESSION_NAME`, else `medview-<time>`). The token file is read on every resolve,
/// because the platform rotates it. The STS endpoint is `AWS_ENDPOINT_URL_STS`, else
/// `AWS_ENDPOINT_URL`, else `https://sts.{region}.amazonaws.com` (`https://sts.amazonaws.com`
/// without a region).
public struct WebIdentityCredentialProvider: AWSCredentialProvider {
    public let name = "web identity"

    let environment: [String: String]
    let http: CredentialHTTP
    let now: @Sendable () -> Date

    /// A provider reading `environment`.
    public init(environment: [String: String], httpClient: HTTPClient = .shared, timeout: Duration = .seconds(5), now: @escaping @Sendable () -> Date = { Date() }) {
        self.environment = environment
        self.http = CredentialHTTP(client: httpClient, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
        self.now = now
    }

    /// The STS endpoint the environment selects.
    public static func stsEndpoint(environment: [String: String]) -> String {
        if let url = environment.nonEmpty("AWS_ENDPOINT_URL_STS") ?? environment.nonEmpty("AWS_ENDPOINT_URL") { return url }
        if let region = AWSRegionResolver.region(environment: environment) { return "https://sts.\(region).amazonaws.com" }
        return "https://sts.amazonaws.com"
    }

    public func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity? {
        let tokenFile = environment.nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE")
        let roleARN = environment.nonEmpty("AWS_ROLE_ARN")
        guard tokenFile != nil || roleARN != nil else { return nil }
        guard let tokenFile, let roleARN else {
            throw .invalid(source: name, reason: "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN must both be set")
        }
        guard let data = FileManager.default.contents(atPath: tokenFile),
              let token = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty
        else { throw .invalid(source: name, reason: "cannot read AWS_WEB_IDENTITY_TOKEN_FILE") }
        let session = environment.nonEmpty("AWS_ROLE_SESSION_NAME") ?? "medview-\(Int(now().timeIntervalSince1970))"
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"),
            ("RoleArn", roleARN), ("RoleSessionName", session), ("WebIdentityToken", token),
        ].map { SigV4Canonical.uriEncode($0.0) + "=" + SigV4Canonical.uriEncode($0.1) }.joined(separator: "&")
        var endpoint = Self.stsEndpoint(environment: environment)
        if !endpoint.hasSuffix("/") { endpoint += "/" }
        let response = try await http.send(
            source: name, method: .POST, url: endpoint,
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")],
            body: form
        )
        guard response.status == 200 else {
            throw .httpStatus(source: name, status: response.status, code: Self.element("Code", in: response.body))
        }
        guard let id = Self.element("AccessKeyId", in: response.body), !id.isEmpty,
              let secret = Self.element("SecretAccessKey", in: response.body), !secret.isEmpty
        else { throw .invalid(source: name, reason: "the STS answer lacks AccessKeyId or SecretAccessKey") }
        var expiration: Date?
        if let raw = Self.element("Expiration", in: response.body) {
            guard let date = CredentialHTTP.parseISO8601(raw) else { throw .invalid(source: name, reason: "Expiration is not an ISO 8601 date") }
            expiration = date
        }
        return AWSCredentialIdentity(
            credentials: SigV4Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: Self.element("SessionToken", in: response.body)),
            expiration: expiration, source: name
        )
    }

    /// The text of the first `<tag>…</tag>` element (any namespace prefix-free tag), with the
    /// five predefined XML entities and numeric references decoded. STS answers are small and
    /// flat, so this is all the XML reading needed.
    static func element(_ tag: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(tag)>"), let close = xml.range(of: "</\(tag)>", range: open.upperBound..<xml.endIndex) else { return nil }
        return decodeEntities(String(xml[open.upperBound..<close.lowerBound])).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = text[...]
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { out += rest[amp...]; return out }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                var scalar: Unicode.Scalar?
                if entity.hasPrefix("#x") {
                    scalar = UInt32(entity.dropFirst(2), radix: 16).flatMap { Unicode.Scalar($0) }
                } else if entity.hasPrefix("#") {
                    scalar = UInt32(entity.dropFirst(), radix: 10).flatMap { Unicode.Scalar($0) }
                }
                if let scalar { out.unicodeScalars.append(scalar) } else { out += rest[amp...semi] }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}
