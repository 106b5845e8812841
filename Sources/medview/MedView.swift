import ArgumentParser
import Foundation
import Logging
import MedViewBench
import MedViewCore
import MedViewLocalModel
import MedViewServer
import CoreMetrics

@main
struct MedView: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medview",
        abstract: "MedView Companion: a health companion whose answers stream over WebSocket and Server-Sent Events.",
        subcommands: [Serve.self, ChatCommand.self, Migrate.self, Token.self, AuditCommand.self, KeysCommand.self, SafetyCommand.self, ModelCommand.self, BenchCommand.self, Dev.self]
    )
}

/// Prints a line straight to standard output (unbuffered, so pipes see it at once).
@Sendable func printLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Resolves the settings (command line > environment > defaults) and starts logging at their level.
func resolveConfiguration(_ arguments: ServeArguments) throws -> ServerConfiguration {
    let configuration: ServerConfiguration
    do {
        configuration = try ServerConfiguration.resolve(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    } catch {
        throw ValidationError(error.description)
    }
    let level = configuration.logLevel
    let writer = logLineWriter
    switch configuration.observability.logFormat {
    case .json:
        LoggingSystem.bootstrap({ label, provider in
            JSONLogHandler(label: label, level: level, writer: writer, metadataProvider: provider)
        }, metadataProvider: LogContext.metadataProvider)
    case .text:
        LoggingSystem.bootstrap({ label, provider in
            var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
            handler.logLevel = level
            return handler
        }, metadataProvider: LogContext.metadataProvider)
    }
    return configuration
}

/// Standard error, shared by JSON log lines and EMF records so that lines never interleave.
let logLineWriter = LineWriter()

/// The service's measurements, and `MetricsSystem` bootstrapped with the same backend so that
/// what libraries measure (model retries and throttles) lands beside them.
func bootstrapMetrics(_ configuration: ServerConfiguration) -> ServerMetrics {
    let o = configuration.observability
    let writer = logLineWriter
    let emf = o.writesEMF ? EMFMetrics(namespace: o.namespace, service: o.service, interval: o.emfInterval, write: { writer.write($0) }) : nil
    let metrics = ServerMetrics(enabled: o.metricsEnabled, emf: emf)
    MetricsSystem.bootstrap(metrics.factory)
    return metrics
}

/// Environment lookup done once, here at the edge.
private func env(_ name: String) -> String? {
    ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the streaming service.",
        discussion: """
            With no options it runs on its embedded defaults: SQLite under ./data, the development \
            token issuer, and the embedded local model (a small demo model, fetched with pip on \
            first run). Every option can also be set by the environment \
            variable named in its help; the command line wins.
            """
    )

    @Option(help: "Address to listen on. [env: MEDVIEW_HOST] (default: 127.0.0.1)")
    var host: String?
    @Option(help: "Port to listen on; 0 picks a free one. [env: MEDVIEW_PORT] (default: 8080)")
    var port: Int?
    @Option(name: .customLong("data-dir"), help: "Directory for the database and the development key. [env: MEDVIEW_DATA_DIR] (default: ./data)")
    var dataDir: String?
    @Option(help: "Model: 'local' (built-in demo model), 'local:/path/model.gguf', 'scripted' or 'scripted:delay=MS,delta=N', 'bedrock:MODEL_ID[?options]' or 'bedrock-invoke:MODEL_ID[?options]' (docs/AWS.md), 'anthropic:MODEL_ID' (ANTHROPIC_API_KEY), 'openai:BASE_URL#MODEL' or 'openai:MODEL' (OPENAI_API_KEY optional). [env: MEDVIEW_MODEL] (default: local)")
    var model: String?
    @Option(help: "'development' (dev tokens accepted) or 'production'. [env: MEDVIEW_ENV] (default: development)")
    var environment: String?
    @Option(help: "Largest chunk sent to clients, in characters. [env: MEDVIEW_CHUNK_CHARS] (default: 256)")
    var chunkChars: Int?
    @Option(help: "Longest wait before pending text is flushed, in ms. [env: MEDVIEW_FLUSH_MS] (default: 50)")
    var flushMs: Int?
    @Option(help: "SSE keep-alive and WebSocket ping interval, in seconds. [env: MEDVIEW_KEEPALIVE_SECONDS] (default: 15)")
    var keepaliveSeconds: Int?
    @Option(help: "Close a WebSocket with no command for this long, in seconds. [env: MEDVIEW_IDLE_TIMEOUT_SECONDS] (default: 900)")
    var idleTimeoutSeconds: Int?
    @Option(name: .customLong("write-stall-seconds"), help: "Close a WebSocket whose client has read nothing for this long while events wait for it, so it reconnects and resumes. [env: MEDVIEW_WRITE_STALL_SECONDS] (default: 30)")
    var writeStallSeconds: Int?
    @Option(help: "Open WebSocket connections per user. [env: MEDVIEW_MAX_CONNECTIONS_PER_USER] (default: 8)")
    var maxConnectionsPerUser: Int?
    @Option(help: "Answers streaming at once per user. [env: MEDVIEW_MAX_STREAMS_PER_USER] (default: 4)")
    var maxStreamsPerUser: Int?
    @Option(name: .customLong("max-running-answers"), help: "Answers this process runs at once, all users together; past it a message gets a retryable 'overloaded' at once. [env: MEDVIEW_MAX_RUNNING_ANSWERS] (default: 2000)")
    var maxRunningAnswers: Int?
    @Option(help: "Longest message, in characters. [env: MEDVIEW_MAX_MESSAGE_CHARS] (default: 8000)")
    var maxMessageChars: Int?
    @Option(help: "Largest WebSocket message or request body, in bytes. [env: MEDVIEW_MAX_FRAME_BYTES] (default: 65536)")
    var maxFrameBytes: Int?
    @Option(help: "Context budget sent to the model, in estimated tokens. [env: MEDVIEW_CONTEXT_TOKENS] (default: 6000)")
    var contextTokens: Int?
    @Option(name: .customLong("max-output-tokens"), help: "Longest answer the model may write, in tokens. [env: MEDVIEW_MAX_OUTPUT_TOKENS] (default: 1024)")
    var maxOutputTokens: Int?
    @Option(help: "Sampling temperature, 0 to 2 (Anthropic accepts 0 to 1). [env: MEDVIEW_TEMPERATURE] (default: the model's own)")
    var temperature: Double?
    @Option(name: .customLong("rate-limit-per-minute"), help: "Messages one user may send per minute, on average (token bucket refill). [env: MEDVIEW_RATE_LIMIT_PER_MINUTE] (default: 20)")
    var rateLimitPerMinute: Int?
    @Option(name: .customLong("rate-limit-burst"), help: "Messages one user may send at once after a pause (token bucket size). [env: MEDVIEW_RATE_LIMIT_BURST] (default: 20)")
    var rateLimitBurst: Int?
    @Option(name: .customLong("daily-output-tokens"), help: "Output tokens one user's answers may use per UTC day; 0 for no budget. [env: MEDVIEW_DAILY_OUTPUT_TOKENS] (default: 0)")
    var dailyOutputTokens: Int?
    @Option(name: .customLong("replay-memory-bytes"), help: "Bytes the replay logs of finished answers may hold in memory, together (estimated). [env: MEDVIEW_REPLAY_MEMORY_BYTES] (default: 67108864)")
    var replayMemoryBytes: Int?
    @Option(name: .customLong("web-dir"), help: "Serve the web page from this folder instead of the built-in copy. [env: MEDVIEW_WEB_DIR]")
    var webDir: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error. [env: MEDVIEW_LOG_LEVEL] (default: info)")
    var logLevel: String?
    @Option(name: .customLong("cognito-issuer"), help: "Production: the Cognito user pool issuer, https://cognito-idp.REGION.amazonaws.com/POOL_ID. [env: MEDVIEW_COGNITO_ISSUER]")
    var cognitoIssuer: String?
    @Option(name: .customLong("cognito-jwks-url"), help: "Where the pool's signing keys are. [env: MEDVIEW_COGNITO_JWKS_URL] (default: issuer + /.well-known/jwks.json)")
    var cognitoJwksUrl: String?
    @Option(name: .customLong("cognito-client-id"), help: "The app client id tokens must be for. [env: MEDVIEW_COGNITO_CLIENT_ID]")
    var cognitoClientId: String?
    @Option(name: .customLong("cognito-domain"), help: "The Hosted UI base URL the page signs in at, e.g. https://auth.example.com. [env: MEDVIEW_COGNITO_DOMAIN]")
    var cognitoDomain: String?
    @Option(name: .customLong("cognito-redirect-uri"), help: "The page URL registered as callback and sign-out URL. [env: MEDVIEW_COGNITO_REDIRECT_URI] (default: the page's own origin + /)")
    var cognitoRedirectUri: String?
    @Option(name: .customLong("cognito-scopes"), help: "OAuth scopes the page asks for. [env: MEDVIEW_COGNITO_SCOPES] (default: openid email)")
    var cognitoScopes: String?
    @Option(name: .customLong("cognito-token-use"), help: "Which token the page sends: access or id. [env: MEDVIEW_COGNITO_TOKEN_USE] (default: access)")
    var cognitoTokenUse: String?
    @Option(name: .customLong("safety-triage"), help: "With a cloud model, ask it for a second opinion on every message the emergency detector found nothing in: on or off. [env: MEDVIEW_SAFETY_TRIAGE] (default: on)")
    var safetyTriage: String?
    @Option(name: .customLong("safety-triage-ms"), help: "The triage's time budget, in ms; past it nothing extra is shown. [env: MEDVIEW_SAFETY_TRIAGE_MS] (default: 1500)")
    var safetyTriageMs: Int?
    @OptionGroup var database: DatabaseOptions
    @Option(name: .customLong("http-header-timeout-seconds"), help: "Longest time to receive a request head (from the connection's start, or from its first byte on a keep-alive connection); then 408 and close. [env: MEDVIEW_HTTP_HEADER_TIMEOUT_SECONDS] (default: 10)")
    var httpHeaderTimeoutSeconds: Int?
    @Option(name: .customLong("http-idle-timeout-seconds"), help: "Close a keep-alive HTTP connection with no request for this long. [env: MEDVIEW_HTTP_IDLE_TIMEOUT_SECONDS] (default: 75)")
    var httpIdleTimeoutSeconds: Int?
    @Option(name: .customLong("max-request-line-bytes"), help: "Longest request line (method, target, version); longer gets 414. [env: MEDVIEW_MAX_REQUEST_LINE_BYTES] (default: 8192)")
    var maxRequestLineBytes: Int?
    @Option(name: .customLong("max-header-count"), help: "Most header fields in a request; more gets 431. [env: MEDVIEW_MAX_HEADER_COUNT] (default: 100)")
    var maxHeaderCount: Int?
    @Option(name: .customLong("max-header-bytes"), help: "Largest request head, in bytes; larger gets 431. [env: MEDVIEW_MAX_HEADER_BYTES] (default: 32768)")
    var maxHeaderBytes: Int?
    @Option(name: .customLong("max-unauthenticated-connections"), help: "Most connections open at once without an authenticated request; keep it below the open-file limit. [env: MEDVIEW_MAX_UNAUTHENTICATED_CONNECTIONS] (default: 256)")
    var maxUnauthenticatedConnections: Int?
    @Option(name: .customLong("allowed-origins"), help: "Comma-separated origins (https://app.example.com) whose pages may open WebSockets and send POST/PUT/PATCH/DELETE, besides the server's own. [env: MEDVIEW_ALLOWED_ORIGINS] (default: the server's own origin only)")
    var allowedOrigins: String?
    @Flag(name: .customLong("allow-dev-tokens-on-network"), help: "DANGEROUS: run development mode (tokens anyone can mint) on a non-loopback address. [env: MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK=1]")
    var allowDevTokensOnNetwork = false
    @Option(name: .customLong("key-provider"), help: "Encryption of stored messages: 'local' (master key file), 'kms' (AWS KMS) or 'off' (development only). [env: MEDVIEW_KEY_PROVIDER] (default: local, or kms when --kms-key-id is set)")
    var keyProvider: String?
    @Option(name: .customLong("master-key-file"), help: "Local master key file, shared by instances on one database. [env: MEDVIEW_MASTER_KEY_FILE] (default: DATA_DIR/master.key, created 0600)")
    var masterKeyFile: String?
    @Option(name: .customLong("log-format"), help: "Log lines as 'json' (one object per line, with CloudWatch EMF metric records) or 'text'. [env: MEDVIEW_LOG_FORMAT] (default: text in development, json in production)")
    var logFormat: String?
    @Option(name: .customLong("metrics-port"), help: "Serve /metrics on this port of --metrics-host instead of the main port (0 picks one). [env: MEDVIEW_METRICS_PORT] (default: none: /metrics on the main port)")
    var metricsPort: Int?
    @Option(name: .customLong("metrics-host"), help: "Address the metrics port listens on. [env: MEDVIEW_METRICS_HOST] (default: 127.0.0.1)")
    var metricsHost: String?
    @Option(name: .customLong("metrics"), help: "'on' or 'off' (records nothing: the benchmark's baseline). [env: MEDVIEW_METRICS] (default: on)")
    var metrics: String?
    @Option(name: .customLong("metrics-flush-ms"), help: "How often EMF metric records are written with JSON logs, in ms; gauges every sixth time. [env: MEDVIEW_METRICS_FLUSH_MS] (default: 10000)")
    var metricsFlushMs: Int?
    @Option(name: .customLong("kms-key-id"), help: "AWS KMS key id, alias or ARN that wraps the data keys (endpoint: AWS_ENDPOINT_URL_KMS or AWS_ENDPOINT_URL). [env: MEDVIEW_KMS_KEY_ID]")
    var kmsKeyId: String?

    func run() async throws {
        var arguments = ServeArguments()
        arguments.host = host
        arguments.port = port
        arguments.dataDirectory = dataDir
        arguments.model = model
        arguments.environment = environment
        arguments.chunkChars = chunkChars
        arguments.flushMs = flushMs
        arguments.keepaliveSeconds = keepaliveSeconds
        arguments.idleTimeoutSeconds = idleTimeoutSeconds
        arguments.writeStallSeconds = writeStallSeconds
        arguments.maxConnectionsPerUser = maxConnectionsPerUser
        arguments.maxStreamsPerUser = maxStreamsPerUser
        arguments.maxRunningAnswers = maxRunningAnswers
        arguments.maxMessageChars = maxMessageChars
        arguments.maxFrameBytes = maxFrameBytes
        arguments.contextTokens = contextTokens
        arguments.maxOutputTokens = maxOutputTokens
        arguments.temperature = temperature
        arguments.webDirectory = webDir
        arguments.rateLimitPerMinute = rateLimitPerMinute
        arguments.rateLimitBurst = rateLimitBurst
        arguments.dailyOutputTokens = dailyOutputTokens
        arguments.replayMemoryBytes = replayMemoryBytes
        arguments.logLevel = logLevel
        arguments.cognitoIssuer = cognitoIssuer
        arguments.cognitoJwksUrl = cognitoJwksUrl
        arguments.cognitoClientId = cognitoClientId
        arguments.cognitoDomain = cognitoDomain
        arguments.cognitoRedirectUri = cognitoRedirectUri
        arguments.cognitoScopes = cognitoScopes
        arguments.cognitoTokenUse = cognitoTokenUse
        arguments.safetyTriage = safetyTriage
        arguments.safetyTriageMs = safetyTriageMs
        database.apply(to: &arguments)
        arguments.httpHeaderTimeoutSeconds = httpHeaderTimeoutSeconds
        arguments.httpIdleTimeoutSeconds = httpIdleTimeoutSeconds
        arguments.maxRequestLineBytes = maxRequestLineBytes
        arguments.maxHeaderCount = maxHeaderCount
        arguments.maxHeaderBytes = maxHeaderBytes
        arguments.maxUnauthenticatedConnections = maxUnauthenticatedConnections
        arguments.allowedOrigins = allowedOrigins
        arguments.allowDevTokensOnNetwork = allowDevTokensOnNetwork ? true : nil
        arguments.keyProvider = keyProvider
        arguments.masterKeyFile = masterKeyFile
        arguments.kmsKeyId = kmsKeyId
        arguments.logFormat = logFormat
        arguments.metricsPort = metricsPort
        arguments.metricsHost = metricsHost
        arguments.metrics = metrics
        arguments.metricsFlushMs = metricsFlushMs
        let configuration = try resolveConfiguration(arguments)
        do {
            let metrics = bootstrapMetrics(configuration)
            let app = try await buildApplication(configuration: configuration, dependencies: .init(metrics: metrics, logger: Logger(label: "medview"), announce: printLine))
            try await app.runService()
        } catch let error as StartupError {
            throw ValidationError(error.description)
        } catch let error as ModelFactory.UnknownModel {
            throw ValidationError(error.description)
        } catch let error as LocalModelError {
            throw ValidationError(error.description)
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a development token for a user (accepted only by a server in development mode)."
    )

    @Option(help: "The user id (the token's subject).")
    var user: String
    @Option(name: .customLong("data-dir"), help: "Data directory holding the development key. [env: MEDVIEW_DATA_DIR] (default: ./data)")
    var dataDir: String?
    @Option(help: "Lifetime in seconds. (default: 3600)")
    var ttl: Int = 3600

    func validate() throws {
        guard !user.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--user must not be empty.") }
        guard ttl > 0 else { throw ValidationError("--ttl must be positive.") }
    }

    func run() async throws {
        let issuer = try await DevTokenIssuer.load(dataDirectory: dataDir ?? env("MEDVIEW_DATA_DIR") ?? "./data")
        print(try await issuer.token(userId: user, lifetime: .seconds(ttl)))
    }
}
