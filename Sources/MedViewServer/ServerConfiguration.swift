import Foundation
import Logging
import MedViewCore
import MedViewPostgres
import MedViewStore

/// Everything `medview serve` needs, read once at the edge (CLI > environment > defaults) by
/// ``resolve(arguments:environment:)``.
public struct ServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (tests).
    public var port: Int
    /// Where the SQLite file and the development signing key live.
    public var dataDirectory: String
    /// Which model answers: `scripted`, or `scripted:delay=MS`.
    public var model: String
    /// `development` allows dev tokens; `production` refuses to start without a real issuer.
    public var environment: String
    /// Amazon Cognito: the token issuer in production (required there), and the page's Hosted UI.
    public var cognito: CognitoSettings?
    public var limits: Limits
    public var chat: ChatConfiguration
    /// Serve the web page from this folder instead of the built-in copy (for working on the page).
    public var webDirectory: String?
    /// The process environment, captured by the CLI; model providers read credentials, regions and
    /// endpoints from it (tests pass their own).
    public var processEnvironment: [String: String]
    /// The lowest level logged.
    public var logLevel: Logger.Level = .info
    /// With a cloud model: ask it for a second opinion on each message that the deterministic
    /// detector found no emergency in, alongside the answer (docs/SAFETY.md).
    public var safetyTriage = true
    /// The longest the triage may take; past it nothing extra is shown.
    public var safetyTriageBudget: Duration = .milliseconds(1500)
    /// The PostgreSQL store, when a database URL is set; `nil` keeps the SQLite file in the data directory.
    public var database: PostgresSettings?
    /// Timeouts and size limits of the HTTP layer, and the cap on unauthenticated connections.
    public var http = HTTPConnectionLimits()
    /// Origins (`scheme://host[:port]`) whose pages may open a WebSocket or send POST, PUT, PATCH
    /// or DELETE requests, besides the server's own origin (the request's `Host`), which is always
    /// allowed. Requests without an `Origin` header (non-browser clients) are not checked.
    public var allowedOrigins: [String] = []
    /// Accept development tokens on a bind address other than loopback. Without it, development
    /// mode refuses to start on such an address.
    public var allowDevTokensOnNetwork = false
    /// Encryption of stored PHI (default: on, local master key file in the data directory).
    public var encryption = EncryptionSettings()
    /// The durable replay log and the liveness of processes sharing a store (docs/PROTOCOL.md).
    public var durability = Durability()

    /// Logs and metrics (docs/METRICS.md).
    public var observability = Observability()

    /// How the service reports on itself: log format, `/metrics`, CloudWatch EMF records.
    public struct Observability: Sendable, Equatable {
        /// One JSON object per line (CloudWatch) or swift-log's text lines.
        public enum LogFormat: String, Sendable { case json, text }
        public var logFormat: LogFormat = .text
        /// `false` records nothing (`--metrics off`, for the benchmark's baseline).
        public var metricsEnabled = true
        /// Serve `/metrics` on this port of ``metricsHost`` instead of the main port (0 picks one).
        public var metricsPort: Int?
        /// Where the metrics listener binds (default: loopback).
        public var metricsHost = "127.0.0.1"
        /// CloudWatch namespace of the EMF records.
        public var namespace = "MedView"
        /// Value of the `Service` dimension on every EMF metric.
        public var service = "medview"
        /// How often EMF records are written (gauges every sixth time).
        public var emfInterval: Duration = .seconds(10)

        public init() {}

        /// EMF records are written with JSON logs only.
        public var writesEMF: Bool { metricsEnabled && logFormat == .json }
    }

    /// How running answers outlive their process.
    public struct Durability: Sendable, Equatable {
        /// The group-commit window of the replay log: each event is stored at most this long
        /// (plus one commit) after it was sent; `nil` stores the log only when the answer ends.
        public var journalInterval: Duration? = .milliseconds(20)
        /// How often this process records that it is alive and looks for orphaned answers.
        public var heartbeatInterval: Duration = .seconds(2)
        /// A process silent this long is taken for dead: its running answers are stored as
        /// `interrupted`, and its share of the per-user limits is released.
        public var staleAfter: Duration = .seconds(10)
        /// The longest a follower of another process's answer waits between reads of the store
        /// (PostgreSQL notifications usually wake it at once).
        public var followPollInterval: Duration = .seconds(1)

        public init() {}
    }

    /// Per-user and per-connection limits.
    public struct Limits: Sendable {
        /// Largest WebSocket message or SSE request body the protocol accepts, in bytes (typed error above it).
        public var maxFrameBytes: Int
        /// Hard transport limit on one WebSocket frame; above it the connection closes with 1009.
        public var hardFrameBytes: Int
        public var maxConnectionsPerUser: Int
        /// A WebSocket connection with no user command (`chat.send`, `stream.resume`,
        /// `stream.cancel`) and no answer streaming for this long is closed (code 4408). Keep-alive
        /// `ping`s and `auth.refresh` do not count: a tab left open must still sign out. The page
        /// applies the same limit to the patient's own activity (docs/WEB.md).
        public var idleTimeout: Duration
        /// SSE keep-alive comment interval; also the WebSocket ping interval.
        public var keepAliveInterval: Duration
        /// How long graceful shutdown lets running answers finish.
        public var shutdownGracePeriod: Duration
        /// A WebSocket whose writes make no progress for this long (the client stopped reading:
        /// a frozen tab, a dead network path) is closed, so the client reconnects and resumes;
        /// meanwhile what waits for it is bounded by the socket's outbound buffer.
        public var writeStallTimeout: Duration = .seconds(30)

        public init(
            maxFrameBytes: Int = 64 * 1024,
            hardFrameBytes: Int = 1024 * 1024,
            maxConnectionsPerUser: Int = 8,
            idleTimeout: Duration = .seconds(900),
            keepAliveInterval: Duration = .seconds(15),
            shutdownGracePeriod: Duration = .seconds(20)
        ) {
            self.maxFrameBytes = maxFrameBytes
            self.hardFrameBytes = hardFrameBytes
            self.maxConnectionsPerUser = maxConnectionsPerUser
            self.idleTimeout = idleTimeout
            self.keepAliveInterval = keepAliveInterval
            self.shutdownGracePeriod = shutdownGracePeriod
        }
    }

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        dataDirectory: String = "./data",
        model: String = "",
        environment: String = "development",
        limits: Limits = .init(),
        chat: ChatConfiguration = .init(),
        webDirectory: String? = nil,
        processEnvironment: [String: String] = [:],
        cognito: CognitoSettings? = nil
    ) {
        self.cognito = cognito
        self.webDirectory = webDirectory
        self.processEnvironment = processEnvironment
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.model = model
        self.environment = environment
        self.limits = limits
        self.chat = chat
    }

    /// Whether development tokens are accepted.
    public var isDevelopment: Bool { environment != "production" }
}
