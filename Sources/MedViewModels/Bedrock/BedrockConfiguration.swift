import Foundation
import MedViewAWS

/// Everything a ``BedrockModel`` needs, resolved once at the edge from the model setting and the
/// process environment.
public struct BedrockConfiguration: Sendable {
    /// Which Bedrock Runtime operation answers.
    public enum API: String, Sendable, Equatable {
        /// `POST /model/{id}/converse-stream` (any model; the default).
        case converse
        /// `POST /model/{id}/invoke-with-response-stream` with an Anthropic Messages body.
        case invoke
    }

    /// How requests are authenticated.
    public enum Authentication: Sendable {
        /// SigV4 with service `bedrock`, credentials from the cache.
        case sigV4(AWSCachedCredentials)
        /// `Authorization: Bearer <Bedrock API key>` (`AWS_BEARER_TOKEN_BEDROCK`), unsigned.
        case bearer(String)
    }

    /// An optional guardrail applied by Bedrock.
    public struct Guardrail: Sendable, Equatable {
        /// The guardrail id or ARN.
        public var identifier: String
        /// The guardrail version (`DRAFT` or a number).
        public var version: String
        /// A guardrail by id and version.
        public init(identifier: String, version: String) {
            self.identifier = identifier
            self.version = version
        }
    }

    /// The model id or ARN, as given (not encoded).
    public var modelID: String
    /// Which operation answers.
    public var api: API
    /// The AWS region, for the endpoint and the signature.
    public var region: String
    /// The endpoint, without a trailing slash (`https://bedrock-runtime.{region}.amazonaws.com`).
    public var endpoint: String
    /// How requests are authenticated.
    public var authentication: Authentication
    /// Overrides the request's temperature.
    public var temperature: Double?
    /// Nucleus sampling (`topP` / `top_p`).
    public var topP: Double?
    /// Overrides the request's `maxOutputTokens`.
    public var maxTokens: Int?
    /// The guardrail Bedrock applies, if any.
    public var guardrail: Guardrail?
    /// The longest the service may stay silent: before the response starts, or between two pieces of it.
    public var requestTimeout: Duration
    /// Retries of throttling and 5xx before the first delta.
    public var retryPolicy: RetryPolicy

    /// A configuration; `endpoint` defaults to the regional one and loses trailing slashes.
    public init(
        modelID: String, api: API = .converse, region: String, endpoint: String? = nil, authentication: Authentication,
        temperature: Double? = nil, topP: Double? = nil, maxTokens: Int? = nil, guardrail: Guardrail? = nil,
        requestTimeout: Duration = .seconds(60), retryPolicy: RetryPolicy = RetryPolicy()
    ) {
        self.modelID = modelID
        self.api = api
        self.region = region
        var endpoint = endpoint ?? "https://bedrock-runtime.\(region).amazonaws.com"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        self.endpoint = endpoint
        self.authentication = authentication
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.guardrail = guardrail
        self.requestTimeout = requestTimeout
        self.retryPolicy = retryPolicy
    }

    /// Why a Bedrock setting was refused.
    public struct SettingError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, for the operator.
        public var reason: String
        /// The reason, prefixed with what was refused.
        public var description: String { "Bedrock model setting: \(reason)" }
    }

    /// The configuration for `details` (what follows `bedrock:` in `--model`), with region,
    /// endpoint and credentials from `environment`.
    ///
    /// `details` is `MODEL_ID[?key=value&…]`. Keys: `api` (`converse` or `invoke`),
    /// `region`, `temperature`, `top_p`, `max_tokens`, `guardrail` (`ID:VERSION`), `timeout`
    /// (seconds), `retries` (attempts in all). Region: `region=`, else `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, the config file's profile. Endpoint: `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`,
    /// else `AWS_ENDPOINT_URL`, else the regional one. Authentication: `AWS_BEARER_TOKEN_BEDROCK`
    /// if set, else SigV4 with ``AWSCredentialChain/standard(environment:httpClient:)``.
    public static func parse(_ details: String, api defaultAPI: API = .converse, environment: [String: String]) throws(SettingError) -> BedrockConfiguration {
        let parts = details.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let modelID = String(parts[0]).trimmingCharacters(in: .whitespaces)
        guard !modelID.isEmpty else { throw SettingError(reason: "a model id is required, e.g. bedrock:anthropic.claude-3-5-haiku-20241022-v1:0") }
        var options: [String: String] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                guard kv.count == 2, !kv[1].isEmpty else { throw SettingError(reason: "option '\(pair)' needs a value") }
                options[kv[0]] = kv[1]
            }
        }
        func number(_ key: String, _ range: ClosedRange<Double>) throws(SettingError) -> Double? {
            guard let raw = options.removeValue(forKey: key) else { return nil }
            guard let value = Double(raw), range.contains(value) else { throw SettingError(reason: "\(key) must be a number in \(range.lowerBound)…\(range.upperBound)") }
            return value
        }
        var api = defaultAPI
        if let raw = options.removeValue(forKey: "api") {
            guard let parsed = API(rawValue: raw) else { throw SettingError(reason: "api must be 'converse' or 'invoke'") }
            api = parsed
        }
        let temperature = try number("temperature", 0...1)
        let topP = try number("top_p", 0...1)
        let maxTokens = try number("max_tokens", 1...1_000_000).map { Int($0) }
        let timeout = try number("timeout", 1...3600) ?? 60
        let retries = try number("retries", 1...10).map { Int($0) }
        var guardrail: Guardrail?
        if let raw = options.removeValue(forKey: "guardrail") {
            let pieces = raw.split(separator: ":", maxSplits: 1).map(String.init)
            guard pieces.count == 2, !pieces[0].isEmpty, !pieces[1].isEmpty else { throw SettingError(reason: "guardrail must be ID:VERSION") }
            guardrail = Guardrail(identifier: pieces[0], version: pieces[1])
        }
        let explicitRegion = options.removeValue(forKey: "region")
        if let unknown = options.keys.sorted().first { throw SettingError(reason: "unknown option '\(unknown)'") }
        guard let region = explicitRegion ?? AWSRegionResolver.region(environment: environment) else {
            throw SettingError(reason: "no region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS config file), or add ?region=")
        }
        let endpoint = Self.endpoint(environment: environment)
        let authentication: Authentication
        if let token = environment["AWS_BEARER_TOKEN_BEDROCK"]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty {
            authentication = .bearer(token)
        } else {
            authentication = .sigV4(AWSCachedCredentials(AWSCredentialChain.standard(environment: environment)))
        }
        var policy = RetryPolicy()
        if let retries { policy = RetryPolicy(maxAttempts: retries, baseDelay: policy.baseDelay, maxDelay: policy.maxDelay) }
        return BedrockConfiguration(
            modelID: modelID, api: api, region: region, endpoint: endpoint, authentication: authentication,
            temperature: temperature, topP: topP, maxTokens: maxTokens, guardrail: guardrail,
            requestTimeout: .milliseconds(Int64(timeout * 1000)), retryPolicy: policy
        )
    }

    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, else `AWS_ENDPOINT_URL`, else `nil` (the regional endpoint).
    public static func endpoint(environment: [String: String]) -> String? {
        for name in ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"] {
            if let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty { return value }
        }
        return nil
    }

    /// The model id as one path segment: everything but `A–Z a–z 0–9 - . _ ~` percent-encoded
    /// (`:` → `%3A`, and `/` of ARNs → `%2F`), as the AWS SDKs send it.
    public static func encodePathSegment(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(UnicodeScalar(hex[Int(byte >> 4)])) + String(UnicodeScalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    /// The request path for this model and API.
    public var path: String { path(streaming: true) }

    /// The request path for this model and API, streamed (`/converse-stream`,
    /// `/invoke-with-response-stream`) or not (`/converse`, `/invoke`).
    public func path(streaming: Bool) -> String {
        let action = switch (api, streaming) {
        case (.converse, true): "/converse-stream"
        case (.converse, false): "/converse"
        case (.invoke, true): "/invoke-with-response-stream"
        case (.invoke, false): "/invoke"
        }
        return "/model/" + Self.encodePathSegment(modelID) + action
    }
}
