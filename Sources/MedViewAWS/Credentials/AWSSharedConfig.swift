import AsyncHTTPClient
import Foundation

/// The shared `credentials` and `config` files of the AWS CLI and SDKs, for one profile.
///
/// Paths: `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`) and `AWS_CONFIG_FILE` (else
/// `~/.aws/config`), with `~` taken from `HOME`. The profile is `AWS_PROFILE`, else
/// `AWS_DEFAULT_PROFILE`, else `default`. In `credentials` sections are `[name]`; in `config`
/// they are `[profile name]` (and `[default]`). A key in `credentials` wins over the same key
/// in `config`. Lines starting with `#` or `;` are comments; keys are case-insensitive.
public struct AWSSharedConfig: Sendable, Hashable {
    /// The profile that was read.
    public var profile: String
    /// The profile's keys (lower-cased) and values; `credentials` file over `config` file.
    public var values: [String: String]
    /// Whether either file has a section for the profile.
    public var profileExists: Bool

    /// Reads both files for the selected profile. Missing files count as empty.
    /// - Throws: ``AWSCredentialError/invalid(source:reason:)`` if a file exists but cannot be read.
    public static func load(environment: [String: String], profile: String? = nil) throws(AWSCredentialError) -> AWSSharedConfig {
        let name = profile ?? environment.nonEmpty("AWS_PROFILE") ?? environment.nonEmpty("AWS_DEFAULT_PROFILE") ?? "default"
        let home = environment.nonEmpty("HOME") ?? NSHomeDirectory()
        let credentialsPath = environment.nonEmpty("AWS_SHARED_CREDENTIALS_FILE").map { expand($0, home: home) } ?? home + "/.aws/credentials"
        let configPath = environment.nonEmpty("AWS_CONFIG_FILE").map { expand($0, home: home) } ?? home + "/.aws/config"
        var values: [String: String] = [:]
        var exists = false
        if let config = try read(configPath) {
            let sections = parse(config)
            let section = name == "default" ? (sections["profile default"] ?? sections["default"]) : sections["profile \(name)"]
            if let section {
                exists = true
                values.merge(section) { _, new in new }
            }
        }
        if let credentials = try read(credentialsPath), let section = parse(credentials)[name] {
            exists = true
            values.merge(section) { _, new in new }
        }
        return AWSSharedConfig(profile: name, values: values, profileExists: exists)
    }

    /// The sections of an INI file: name (trimmed, inner spaces collapsed) → lower-cased key → value.
    public static func parse(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard let close = line.firstIndex(of: "]") else { current = nil; continue }
                let name = line[line.index(after: line.startIndex)..<close]
                    .split(whereSeparator: \.isWhitespace).joined(separator: " ")
                current = name
                if sections[name] == nil { sections[name] = [:] }
                continue
            }
            // Indented lines continue a nested block (`s3 =` sub-settings); they are not profile keys.
            if rawLine.first?.isWhitespace == true { continue }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if let comment = value.range(of: " #") ?? value.range(of: " ;") { value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces) }
            sections[current]?[key] = value
        }
        return sections
    }

    static func expand(_ path: String, home: String) -> String {
        path.hasPrefix("~/") ? home + path.dropFirst(1) : path
    }

    static func read(_ path: String) throws(AWSCredentialError) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .invalid(source: "shared config", reason: "cannot read \(path)")
        }
        return text
    }
}

/// Credentials from the shared `credentials`/`config` files (`aws_access_key_id`,
/// `aws_secret_access_key`, `aws_session_token`) of the selected profile (see ``AWSSharedConfig``).
/// A profile with `role_arn` and `web_identity_token_file` (and optional `role_session_name`)
/// instead assumes the role through STS, like ``WebIdentityCredentialProvider``.
public struct ProfileCredentialProvider: AWSCredentialProvider {
    public var name: String { "profile" }
    let environment: [String: String]
    let profile: String?
    let httpClient: HTTPClient

    /// A provider for `profile`, or the one the environment selects.
    public init(environment: [String: String], profile: String? = nil, httpClient: HTTPClient = .shared) {
        self.environment = environment
        self.profile = profile
        self.httpClient = httpClient
    }

    public func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity? {
        let config = try AWSSharedConfig.load(environment: environment, profile: profile)
        let id = config.values.nonEmpty("aws_access_key_id")
        let secret = config.values.nonEmpty("aws_secret_access_key")
        let source = "profile \(config.profile)"
        switch (id, secret) {
        case (nil, nil):
            if let tokenFile = config.values.nonEmpty("web_identity_token_file"), let role = config.values.nonEmpty("role_arn") {
                var settings = environment
                settings["AWS_WEB_IDENTITY_TOKEN_FILE"] = tokenFile
                settings["AWS_ROLE_ARN"] = role
                settings["AWS_ROLE_SESSION_NAME"] = config.values.nonEmpty("role_session_name") ?? environment.nonEmpty("AWS_ROLE_SESSION_NAME")
                guard var identity = try await WebIdentityCredentialProvider(environment: settings, httpClient: httpClient).resolve() else { return nil }
                identity.source = "\(source) web identity"
                return identity
            }
            // An explicitly chosen profile that does not exist is a mistake worth saying.
            if !config.profileExists, profile != nil || environment.nonEmpty("AWS_PROFILE") != nil {
                throw .invalid(source: source, reason: "the profile is in neither the credentials nor the config file")
            }
            return nil
        case (let id?, let secret?):
            return AWSCredentialIdentity(
                credentials: SigV4Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: config.values.nonEmpty("aws_session_token")),
                source: source
            )
        default:
            throw .invalid(source: source, reason: "aws_access_key_id and aws_secret_access_key must both be set")
        }
    }
}

/// The region, in the order the AWS SDKs use: `AWS_REGION`, `AWS_DEFAULT_REGION`, then `region`
/// in the selected profile of the config file.
public enum AWSRegionResolver {
    /// The region, or `nil` if none is configured.
    public static func region(environment: [String: String]) -> String? {
        if let region = environment.nonEmpty("AWS_REGION") ?? environment.nonEmpty("AWS_DEFAULT_REGION") { return region }
        return (try? AWSSharedConfig.load(environment: environment))?.values.nonEmpty("region")
    }
}
