import AsyncHTTPClient
import Foundation
import NIOCore

/// ECS (and EKS Pod Identity) container credentials.
///
/// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is fetched from `http://169.254.170.2`;
/// otherwise `AWS_CONTAINER_CREDENTIALS_FULL_URI` is fetched as given, which must be HTTPS or
/// plain HTTP to a loopback address or to the ECS/EKS link-local hosts (as the AWS SDKs require).
/// The `Authorization` header is the content of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` if set,
/// else `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
public struct ContainerCredentialProvider: AWSCredentialProvider {
    public let name = "container"
    /// The host for relative URIs.
    public static let ecsHost = "http://169.254.170.2"
    static let allowedHTTPHosts: Set<String> = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23", "[fd00:ec2::23]"]

    let environment: [String: String]
    let http: CredentialHTTP
    let relativeBase: String

    /// A provider reading `environment`; `relativeBase` replaces the ECS host (tests only).
    public init(environment: [String: String], httpClient: HTTPClient = .shared, timeout: Duration = .seconds(2), relativeBase: String = ContainerCredentialProvider.ecsHost) {
        self.environment = environment
        self.http = CredentialHTTP(client: httpClient, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
        self.relativeBase = relativeBase
    }

    public func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity? {
        let url: String
        if let relative = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            url = relativeBase + (relative.hasPrefix("/") ? relative : "/" + relative)
        } else if let full = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            guard let components = URLComponents(string: full), let scheme = components.scheme?.lowercased(), let host = components.host, !host.isEmpty else {
                throw .invalid(source: name, reason: "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL")
            }
            guard scheme == "https" || (scheme == "http" && (Self.isLoopback(host) || Self.allowedHTTPHosts.contains(host))) else {
                throw .invalid(source: name, reason: "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback or ECS/EKS address")
            }
            url = full
        } else {
            return nil
        }
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let path = environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            guard let data = FileManager.default.contents(atPath: path), let token = String(data: data, encoding: .utf8) else {
                throw .invalid(source: name, reason: "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            }
            headers.append(("Authorization", try Self.checkedToken(token)))
        } else if let token = environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN") {
            headers.append(("Authorization", try Self.checkedToken(token)))
        }
        let response = try await http.send(source: name, method: .GET, url: url, headers: headers)
        guard response.status == 200 else { throw .httpStatus(source: name, status: response.status, code: nil) }
        return try CredentialHTTP.parseCredentialsJSON(response.body, source: name)
    }

    static func checkedToken(_ raw: String) throws(AWSCredentialError) -> String {
        let token = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, !token.contains(where: { $0 == "\r" || $0 == "\n" }) else {
            throw .invalid(source: "container", reason: "the authorization token is empty or has a line break")
        }
        return token
    }

    static func isLoopback(_ host: String) -> Bool {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return bare == "localhost" || bare == "::1" || bare.hasPrefix("127.")
    }
}
