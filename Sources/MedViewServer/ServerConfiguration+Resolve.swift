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
    public var writeStallSeconds: Int?
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
    public var safetyTriage: String?
    public var safetyTriageMs: Int?
    public var rateLimitPerMinute: Int?
    public var rateLimitBurst: Int?
    public var dailyOutputTokens: Int?
    public var replayMemoryBytes: Int?
    public var databaseUrl: String?
    public var databasePoolSize: Int?
    public var databaseIamAuth: Bool?
    public var httpHeaderTimeoutSeconds: Int?
    public var httpIdleTimeoutSeconds: Int?
    public var maxRequestLineBytes: Int?
    public var maxHeaderCount: Int?
    public var maxHeaderBytes: Int?
    public var maxUnauthenticatedConnections: Int?
    /// Comma-separated origins, such as `https://app.example.com`.
    public var allowedOrigins: String?
    public var allowDevTokensOnNetwork: Bool?
    public var keyProvider: String?
    public var masterKeyFile: String?
    public var kmsKeyId: String?
    public var journalIntervalMs: Int?
    public var heartbeatIntervalMs: Int?
    public var instanceStaleAfterMs: Int?
    public var maxRunningAnswers: Int?
    /// `json` or `text`.
    public var logFormat: String?
    public var metricsPort: Int?
    public var metricsHost: String?
    /// `on` or `off`.
    public var metrics: String?
    public var metricsFlushMs: Int?

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
        limits.writeStallTimeout = .seconds(try int(a.writeStallSeconds, "MEDVIEW_WRITE_STALL_SECONDS", 30, min: 1))
        var chat = ChatConfiguration()
        chat.chunking = .init(
            maxCharacters: try int(a.chunkChars, "MEDVIEW_CHUNK_CHARS", 256, min: 8),
            maxDelay: .milliseconds(try int(a.flushMs, "MEDVIEW_FLUSH_MS", 50, min: 0))
        )
        chat.maxActiveStreamsPerUser = try int(a.maxStreamsPerUser, "MEDVIEW_MAX_STREAMS_PER_USER", chat.maxActiveStreamsPerUser)
        chat.maxRunningAnswers = try int(a.maxRunningAnswers, "MEDVIEW_MAX_RUNNING_ANSWERS", chat.maxRunningAnswers)
        chat.maxMessageCharacters = try int(a.maxMessageChars, "MEDVIEW_MAX_MESSAGE_CHARS", chat.maxMessageCharacters)
        chat.contextBudgetTokens = try int(a.contextTokens, "MEDVIEW_CONTEXT_TOKENS", chat.contextBudgetTokens)
        chat.maxOutputTokens = try int(a.maxOutputTokens, "MEDVIEW_MAX_OUTPUT_TOKENS", chat.maxOutputTokens)
        let usage = UsageLimits()
        let dailyOutputTokens = try int(a.dailyOutputTokens, "MEDVIEW_DAILY_OUTPUT_TOKENS", 0, min: 0)
        chat.usageLimits = UsageLimits(
            messagesPerMinute: try int(a.rateLimitPerMinute, "MEDVIEW_RATE_LIMIT_PER_MINUTE", usage.messagesPerMinute),
            burst: try int(a.rateLimitBurst, "MEDVIEW_RATE_LIMIT_BURST", usage.burst),
            dailyOutputTokens: dailyOutputTokens == 0 ? nil : dailyOutputTokens
        )
        chat.replayMemoryBytes = try int(a.replayMemoryBytes, "MEDVIEW_REPLAY_MEMORY_BYTES", chat.replayMemoryBytes, min: 0)
        var durability = ServerConfiguration.Durability()
        let journalMs = try int(a.journalIntervalMs, "MEDVIEW_JOURNAL_INTERVAL_MS", 20, min: 0)
        durability.journalInterval = journalMs == 0 ? nil : .milliseconds(journalMs)
        durability.heartbeatInterval = .milliseconds(try int(a.heartbeatIntervalMs, "MEDVIEW_HEARTBEAT_INTERVAL_MS", 2000, min: 50))
        durability.staleAfter = .milliseconds(try int(a.instanceStaleAfterMs, "MEDVIEW_INSTANCE_STALE_AFTER_MS", 10_000, min: 100))
        guard durability.staleAfter >= durability.heartbeatInterval * 2 else {
            throw ConfigurationError("--instance-stale-after-ms must be at least twice --heartbeat-interval-ms (a live process must not look dead between two beats).")
        }
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
        let triage = a.safetyTriage ?? env("MEDVIEW_SAFETY_TRIAGE") ?? "on"
        guard triage == "on" || triage == "off" else {
            throw ConfigurationError("--safety-triage / MEDVIEW_SAFETY_TRIAGE must be 'on' or 'off'.")
        }
        configuration.safetyTriage = triage == "on"
        configuration.safetyTriageBudget = .milliseconds(try int(a.safetyTriageMs, "MEDVIEW_SAFETY_TRIAGE_MS", 1500, min: 50))
        configuration.database = try resolveDatabase(url: a.databaseUrl, poolSize: a.databasePoolSize, iamAuthentication: a.databaseIamAuth, environment: environment)
        configuration.http = HTTPConnectionLimits(
            headerTimeout: .seconds(try int(a.httpHeaderTimeoutSeconds, "MEDVIEW_HTTP_HEADER_TIMEOUT_SECONDS", 10)),
            idleTimeout: .seconds(try int(a.httpIdleTimeoutSeconds, "MEDVIEW_HTTP_IDLE_TIMEOUT_SECONDS", 75)),
            maxRequestLineBytes: try int(a.maxRequestLineBytes, "MEDVIEW_MAX_REQUEST_LINE_BYTES", 8192, min: 256),
            maxHeaderCount: try int(a.maxHeaderCount, "MEDVIEW_MAX_HEADER_COUNT", 100, min: 8),
            maxHeaderBytes: try int(a.maxHeaderBytes, "MEDVIEW_MAX_HEADER_BYTES", 32768, min: 1024),
            maxUnauthenticatedConnections: try int(a.maxUnauthenticatedConnections, "MEDVIEW_MAX_UNAUTHENTICATED_CONNECTIONS", 256)
        )
        configuration.allowedOrigins = try allowedOrigins(a.allowedOrigins ?? env("MEDVIEW_ALLOWED_ORIGINS"))
        configuration.allowDevTokensOnNetwork = try flag(a.allowDevTokensOnNetwork, env("MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK"), "--allow-dev-tokens-on-network / MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK")
        configuration.encryption = try resolveEncryption(arguments: a, environment: environmentName, env: env)
        configuration.durability = durability
        configuration.observability = try resolveObservability(arguments: a, environment: environmentName, env: env, int: int)
        return configuration
    }

    /// Log format, metrics switch and listener, and the CloudWatch EMF namespace and service.
    static func resolveObservability(arguments a: ServeArguments, environment: String, env: (String) -> String?, int: (Int?, String, Int, Int) throws(ConfigurationError) -> Int) throws(ConfigurationError) -> Observability {
        var o = Observability()
        let format = a.logFormat ?? env("MEDVIEW_LOG_FORMAT") ?? (environment == "production" ? "json" : "text")
        guard let logFormat = Observability.LogFormat(rawValue: format) else {
            throw ConfigurationError("--log-format / MEDVIEW_LOG_FORMAT must be 'json' or 'text'.")
        }
        o.logFormat = logFormat
        let switchValue = a.metrics ?? env("MEDVIEW_METRICS") ?? "on"
        guard switchValue == "on" || switchValue == "off" else {
            throw ConfigurationError("--metrics / MEDVIEW_METRICS must be 'on' or 'off'.")
        }
        o.metricsEnabled = switchValue == "on"
        if a.metricsPort != nil || env("MEDVIEW_METRICS_PORT") != nil {
            let port = try int(a.metricsPort, "MEDVIEW_METRICS_PORT", 0, 0)
            guard port <= 65535 else { throw ConfigurationError("--metrics-port / MEDVIEW_METRICS_PORT must be at most 65535.") }
            o.metricsPort = port
        }
        o.metricsHost = a.metricsHost ?? env("MEDVIEW_METRICS_HOST") ?? "127.0.0.1"
        o.namespace = env("MEDVIEW_METRICS_NAMESPACE") ?? "MedView"
        o.service = env("MEDVIEW_METRICS_SERVICE") ?? "medview"
        o.emfInterval = .milliseconds(try int(a.metricsFlushMs, "MEDVIEW_METRICS_FLUSH_MS", 10_000, 10))
        return o
    }

    /// `--allowed-origins`: comma-separated `scheme://host[:port]` origins, each normalised.
    static func allowedOrigins(_ raw: String?) throws(ConfigurationError) -> [String] {
        guard let raw else { return [] }
        var origins: [String] = []
        for item in raw.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            guard let origin = OriginPolicy.normalize(item) else {
                throw ConfigurationError("--allowed-origins / MEDVIEW_ALLOWED_ORIGINS: '\(item)' is not an origin such as https://app.example.com (scheme, host and optional port only).")
            }
            origins.append(origin)
        }
        return origins
    }

    /// A switch: the command line's `true`, or the variable's `1`/`true`/`yes` (`0`/`false`/`no` for off).
    static func flag(_ cli: Bool?, _ raw: String?, _ names: String) throws(ConfigurationError) -> Bool {
        if let cli, cli { return true }
        guard let raw else { return false }
        switch raw.lowercased() {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw ConfigurationError("\(names) must be 1 or 0 (true or false).")
        }
    }
}
