import Foundation
import Logging
import MedViewCore

/// The settings `medview serve` was given on its command line; `nil` where an option was not given.
public struct ServeArguments: Sendable, Equatable {
    public var host: String?
    public var port: Int?
    public var dataDirectory: String?
    public var model: String?
    public var environment: String?
    public var chunkChars: Int?
    public var flushMs: Int?
    public var keepaliveSeconds: Int?
    public var idleTimeoutSeconds: Int?
    public var maxConnectionsPerUser: Int?
    public var maxStreamsPerUser: Int?
    public var maxMessageChars: Int?
    public var maxFrameBytes: Int?
    public var contextTokens: Int?
    public var maxOutputTokens: Int?
    public var temperature: Double?
    public var webDirectory: String?
    public var logLevel: String?
    public var cognitoIssuer: String?
    public var cognitoJwksUrl: String?
    public var cognitoClientId: String?
    public var cognitoDomain: String?
    public var cognitoRedirectUri: String?
    public var cognitoScopes: String?
    public var cognitoTokenUse: String?
    public var keyProvider: String?
    public var masterKeyFile: String?
    public var kmsKeyId: String?

    public init() {}
}

/// A setting that cannot be used, named as the person gave it (option and environment variable).
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension ServerConfiguration {
    /// The SQLite file inside the data directory.
    public var databasePath: String {
        (dataDirectory as NSString).appendingPathComponent("medview.sqlite")
    }

    /// Resolves every setting: the command line wins, then the environment (`MEDVIEW_*`), then
    /// the default. The same bounds apply to all three sources, and an error names both the
    /// option and its variable. `environment` is also kept for model providers (credentials,
    /// regions, endpoints).
    public static func resolve(arguments a: ServeArguments, environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        let env = { (name: String) -> String? in environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        func int(_ cli: Int?, _ name: String, _ fallback: Int, min: Int = 1) throws(ConfigurationError) -> Int {
            let flag = "--" + name.dropFirst("MEDVIEW_".count).lowercased().replacingOccurrences(of: "_", with: "-")
            var value = fallback
            if let cli {
                value = cli
            } else if let raw = env(name) {
                guard let parsed = Int(raw) else { throw ConfigurationError("\(name) must be a whole number.") }
                value = parsed
            }
            guard value >= min else { throw ConfigurationError("\(flag) / \(name) must be at least \(min).") }
            return value
        }
        var limits = Limits()
        limits.maxFrameBytes = try int(a.maxFrameBytes, "MEDVIEW_MAX_FRAME_BYTES", limits.maxFrameBytes, min: 1024)
        limits.hardFrameBytes = max(limits.hardFrameBytes, 4 * limits.maxFrameBytes)
        limits.maxConnectionsPerUser = try int(a.maxConnectionsPerUser, "MEDVIEW_MAX_CONNECTIONS_PER_USER", limits.maxConnectionsPerUser)
        limits.idleTimeout = .seconds(try int(a.idleTimeoutSeconds, "MEDVIEW_IDLE_TIMEOUT_SECONDS", 900))
        limits.keepAliveInterval = .seconds(try int(a.keepaliveSeconds, "MEDVIEW_KEEPALIVE_SECONDS", 15))
        var chat = ChatConfiguration()
        chat.chunking = .init(
            maxCharacters: try int(a.chunkChars, "MEDVIEW_CHUNK_CHARS", 256, min: 8),
            maxDelay: .milliseconds(try int(a.flushMs, "MEDVIEW_FLUSH_MS", 50, min: 0))
        )
        chat.maxActiveStreamsPerUser = try int(a.maxStreamsPerUser, "MEDVIEW_MAX_STREAMS_PER_USER", chat.maxActiveStreamsPerUser)
        chat.maxMessageCharacters = try int(a.maxMessageChars, "MEDVIEW_MAX_MESSAGE_CHARS", chat.maxMessageCharacters)
        chat.contextBudgetTokens = try int(a.contextTokens, "MEDVIEW_CONTEXT_TOKENS", chat.contextBudgetTokens)
        chat.maxOutputTokens = try int(a.maxOutputTokens, "MEDVIEW_MAX_OUTPUT_TOKENS", chat.maxOutputTokens)
        if let raw = a.temperature.map({ String($0) }) ?? env("MEDVIEW_TEMPERATURE") {
            guard let value = Double(raw), value.isFinite, (0...2).contains(value) else {
                throw ConfigurationError("--temperature / MEDVIEW_TEMPERATURE must be a number from 0 to 2.")
            }
            chat.temperature = value
        }
        let environmentName = a.environment ?? env("MEDVIEW_ENV") ?? "development"
        guard environmentName == "development" || environmentName == "production" else {
            throw ConfigurationError("--environment / MEDVIEW_ENV must be 'development' or 'production'.")
        }
        var cognito: CognitoSettings?
        let issuer = a.cognitoIssuer ?? env("MEDVIEW_COGNITO_ISSUER")
        let clientId = a.cognitoClientId ?? env("MEDVIEW_COGNITO_CLIENT_ID")
        if issuer != nil || clientId != nil {
            guard let issuer, let clientId else {
                throw ConfigurationError("Cognito needs both --cognito-issuer and --cognito-client-id (MEDVIEW_COGNITO_ISSUER, MEDVIEW_COGNITO_CLIENT_ID).")
            }
            do {
                cognito = try CognitoSettings(
                    issuer: issuer,
                    jwksURL: a.cognitoJwksUrl ?? env("MEDVIEW_COGNITO_JWKS_URL"),
                    clientId: clientId,
                    domain: a.cognitoDomain ?? env("MEDVIEW_COGNITO_DOMAIN"),
                    redirectURI: a.cognitoRedirectUri ?? env("MEDVIEW_COGNITO_REDIRECT_URI"),
                    scopes: a.cognitoScopes ?? env("MEDVIEW_COGNITO_SCOPES") ?? "openid email",
                    pageTokenUse: a.cognitoTokenUse ?? env("MEDVIEW_COGNITO_TOKEN_USE") ?? "access"
                )
            } catch {
                throw ConfigurationError(error.description)
            }
        }
        let levelName = a.logLevel ?? env("MEDVIEW_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else { throw ConfigurationError("Unknown log level '\(levelName)'.") }
        var configuration = ServerConfiguration(
            host: a.host ?? env("MEDVIEW_HOST") ?? "127.0.0.1",
            port: try int(a.port, "MEDVIEW_PORT", 8080, min: 0),
            dataDirectory: a.dataDirectory ?? env("MEDVIEW_DATA_DIR") ?? "./data",
            model: a.model ?? env("MEDVIEW_MODEL") ?? "",
            environment: environmentName,
            limits: limits,
            chat: chat,
            webDirectory: a.webDirectory ?? env("MEDVIEW_WEB_DIR"),
            processEnvironment: environment,
            cognito: cognito
        )
        configuration.logLevel = level
        configuration.encryption = try resolveEncryption(arguments: a, environment: environmentName, env: env)
        return configuration
    }
}
