import AsyncHTTPClient
import Foundation
import NIOCore

/// EC2 instance profile credentials over IMDSv2.
///
/// `PUT /latest/api/token` (with `X-aws-ec2-metadata-token-ttl-seconds`), then
/// `GET /latest/meta-data/iam/security-credentials/` for the role name and
/// `GET …/security-credentials/{role}` for the keys, both with `X-aws-ec2-metadata-token`.
/// The endpoint is `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`;
/// `AWS_EC2_METADATA_DISABLED=true` turns the source off. As the last source of the chain, an
/// endpoint that does not answer counts as "not configured" (off EC2 it never answers).
public struct InstanceMetadataCredentialProvider: AWSCredentialProvider {
    public let name = "instance metadata"
    /// The IMDS address.
    public static let defaultEndpoint = "http://169.254.169.254"

    let environment: [String: String]
    let http: CredentialHTTP

    /// A provider reading `environment`.
    public init(environment: [String: String], httpClient: HTTPClient = .shared, timeout: Duration = .seconds(1)) {
        self.environment = environment
        self.http = CredentialHTTP(client: httpClient, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
    }

    public func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity? {
        if environment.nonEmpty("AWS_EC2_METADATA_DISABLED")?.lowercased() == "true" { return nil }
        var endpoint = environment.nonEmpty("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? Self.defaultEndpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        let tokenResponse: CredentialHTTP.Response
        do throws(AWSCredentialError) {
            tokenResponse = try await http.send(source: name, method: .PUT, url: endpoint + "/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")])
        } catch .unreachable {
            return nil
        }
        guard tokenResponse.status == 200, !tokenResponse.body.isEmpty else {
            throw .httpStatus(source: name, status: tokenResponse.status, code: nil)
        }
        let tokenHeader = [("X-aws-ec2-metadata-token", tokenResponse.body.trimmingCharacters(in: .whitespacesAndNewlines))]
        let base = endpoint + "/latest/meta-data/iam/security-credentials/"
        let roles = try await http.send(source: name, method: .GET, url: base, headers: tokenHeader)
        if roles.status == 404 { throw .invalid(source: name, reason: "the instance has no IAM role") }
        guard roles.status == 200 else { throw .httpStatus(source: name, status: roles.status, code: nil) }
        guard let role = roles.body.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }), !role.isEmpty,
              let escaped = role.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
        else { throw .invalid(source: name, reason: "the instance has no IAM role") }
        let keys = try await http.send(source: name, method: .GET, url: base + escaped, headers: tokenHeader)
        guard keys.status == 200 else { throw .httpStatus(source: name, status: keys.status, code: nil) }
        return try CredentialHTTP.parseCredentialsJSON(keys.body, source: name)
    }
}
