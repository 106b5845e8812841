import Foundation

/// What the Lambda function needs beyond the server's configuration, read once from the
/// environment Lambda gives it (``resolve(environment:)``).
public struct LambdaSettings: Sendable, Equatable {
    /// `AWS_LAMBDA_RUNTIME_API`: the Runtime API's `host:port`.
    public var runtimeAPI: String
    /// `MEDVIEW_WS_MANAGEMENT_ENDPOINT`: the Management API of the WebSocket stage
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`); without it, built from
    /// each event's `domainName` and `stage`.
    public var managementEndpoint: URL?
    /// `AWS_REGION`: the region the Management API requests are signed for.
    public var region: String
    /// `MEDVIEW_LAMBDA_DEADLINE_MARGIN_MS` (default 3000): how long before the invocation's
    /// deadline a running answer is stopped, so that its ending is stored in time.
    public var deadlineMargin: Duration
    /// `MEDVIEW_LAMBDA_ALLOW_SQLITE=1`: accept the SQLite store (development only: Lambda's /tmp
    /// is per execution environment and vanishes with it).
    public var allowSQLite: Bool

    public init(runtimeAPI: String, managementEndpoint: URL? = nil, region: String = "us-east-1", deadlineMargin: Duration = .seconds(3), allowSQLite: Bool = false) {
        self.runtimeAPI = runtimeAPI
        self.managementEndpoint = managementEndpoint
        self.region = region
        self.deadlineMargin = deadlineMargin
        self.allowSQLite = allowSQLite
    }

    /// Why the settings are unusable.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Reads the settings from `environment`.
    public static func resolve(environment: [String: String]) throws(Invalid) -> LambdaSettings {
        guard let runtimeAPI = environment["AWS_LAMBDA_RUNTIME_API"], !runtimeAPI.isEmpty else {
            throw Invalid(description: "AWS_LAMBDA_RUNTIME_API is not set: `bootstrap` runs inside AWS Lambda (or against a stand-in of its Runtime API), not on its own.")
        }
        var settings = LambdaSettings(runtimeAPI: runtimeAPI)
        if let raw = environment["MEDVIEW_WS_MANAGEMENT_ENDPOINT"], !raw.isEmpty {
            guard let url = URL(string: raw), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw Invalid(description: "MEDVIEW_WS_MANAGEMENT_ENDPOINT must be an http(s) URL such as https://abc123.execute-api.eu-west-1.amazonaws.com/prod.")
            }
            settings.managementEndpoint = url
        }
        settings.region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        if let raw = environment["MEDVIEW_LAMBDA_DEADLINE_MARGIN_MS"] {
            guard let ms = Int(raw), ms >= 0, ms <= 60_000 else {
                throw Invalid(description: "MEDVIEW_LAMBDA_DEADLINE_MARGIN_MS must be 0 to 60000 milliseconds.")
            }
            settings.deadlineMargin = .milliseconds(ms)
        }
        if let raw = environment["MEDVIEW_LAMBDA_ALLOW_SQLITE"] {
            settings.allowSQLite = ["1", "true", "yes", "on"].contains(raw.lowercased())
        }
        return settings
    }
}
