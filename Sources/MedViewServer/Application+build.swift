import Foundation
import Logging
import MedViewCore
import MedViewPostgres
import MedViewProtocol
import MedViewSafety
import MedViewStore
import ServiceLifecycle
import UnixSignals

/// What tests and tools may supply instead of what the configuration names. Anything left `nil`
/// is built from the configuration, as `medview serve` does.
public struct AppDependencies: Sendable {
    /// The model (default: ``ModelFactory`` from `configuration.model`).
    public var model: (any ChatModel)?
    /// The conversation store (default: PostgreSQL when `configuration.database` is set, else the
    /// SQLite file in the data directory, encrypted unless encryption is off). A store passed in
    /// is still closed when the application stops.
    public var store: (any ConversationStore)?
    /// The token verifier (default: the development issuer in development mode, Cognito in production).
    public var verifier: (any TokenVerifier)?
    /// The clinical checks (default: the bundled ``ClinicalSafetyPolicy``).
    public var safety: (any SafetyPolicy)?
    /// The audit log's storage (default: the `audit_log` table when the store is on PostgreSQL,
    /// else `audit.sqlite` in the data directory). It is closed when the application stops.
    public var auditStore: (any AuditStore)?
    public var logger: Logger
    /// The measurements (default: built from `configuration.observability`, with a registry of
    /// their own). The executable passes the one it bootstrapped `MetricsSystem` with.
    public var metrics: ServerMetrics?
    /// Where start-up lines for a person go (the executable prints them).
    public var announce: @Sendable (String) -> Void

    public init(model: (any ChatModel)? = nil, store: (any ConversationStore)? = nil, verifier: (any TokenVerifier)? = nil, safety: (any SafetyPolicy)? = nil, auditStore: (any AuditStore)? = nil, metrics: ServerMetrics? = nil, logger: Logger = Logger(label: "medview"), announce: @escaping @Sendable (String) -> Void = { _ in }) {
        self.model = model
        self.metrics = metrics
        self.auditStore = auditStore
        self.store = store
        self.verifier = verifier
        self.safety = safety
        self.logger = logger
        self.announce = announce
    }
}

/// Why the server refused to start.
public struct StartupError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// The whole service as one `Service`: the store, the model engine, the HTTP/WebSocket server,
/// the session sweeper and the stream registry, run by one `ServiceGroup`.
///
/// Start-up runs in that order; graceful shutdown (SIGTERM, SIGINT) runs in reverse: the
/// registry stops taking new answers and drains running ones while clients are still connected
/// (they get the rest, or a typed `shutting_down` error, and every ending is stored), the
/// sweeper lets each WebSocket write out those last events, then the server stops and closes
/// its connections, the model engine stops, and the store flushes and closes last.
public struct MedViewApplication: Service {
    /// The engine (tests reach the store and the registry through it).
    public let chat: ChatService
    /// The token verifier in use (the development issuer in development mode).
    public let verifier: any TokenVerifier
    public let metrics: ServerMetrics
    /// Where the edges record who did what (``AuditWriter``).
    public let audit: AuditWriter
    let services: [any Service]
    let logger: Logger

    public func run() async throws {
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        try await group.run()
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    public func runService(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        let group = ServiceGroup(configuration: .init(services: [.init(service: self)], gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
        try await group.run()
    }
}

/// The engine every shape of the service runs (`medview serve`, and the Lambda function of
/// docs/LAMBDA.md): the model, the store, the token verifier, the audit writer, the safety
/// policy, the metrics, and the stream machinery (registry, durable replay log, recovery,
/// followers of other processes' answers), built from one ``ServerConfiguration``.
public struct MedViewEngine: Sendable {
    public let chat: ChatService
    public let verifier: any TokenVerifier
    public let metrics: ServerMetrics
    public let audit: AuditWriter
    /// The PostgreSQL store under the conversation store (which may be an encrypting wrapper),
    /// when the store is on PostgreSQL.
    public let shared: PostgresConversationStore?
    /// This process's id and the recovery of dead processes' answers.
    public let recovery: StreamRecovery
    /// The engine's services, in start order (the store first, so that it stops last); the
    /// registry, which drains answers, is ``chat``'s and is not among them: run it last.
    public let services: [any Service]
}

/// Builds the engine from its configuration: opens the store and loads the model now (so a bad
/// setting is refused before anything listens).
public func buildEngine(configuration: ServerConfiguration, dependencies: AppDependencies = .init()) async throws -> MedViewEngine {
    let logger = dependencies.logger
    let announce = dependencies.announce
    // The bundled safety data takes a few hundred milliseconds to load: load it while the model
    // and the store are opened (network and disk waits, on PostgreSQL a TLS handshake and the
    // migration check), so a cold start does not pay for it after them.
    let safetyData: Task<Void, Never>? = dependencies.safety == nil ? Task { await BundledSafetyData.load() } : nil
    let model: any ChatModel
    if let given = dependencies.model {
        model = given
    } else {
        model = try await ModelFactory.make(configuration.model, context: .init(environment: configuration.processEnvironment, dataDirectory: configuration.dataDirectory, logger: logger, announce: announce))
    }
    let store: any ConversationStore
    if let given = dependencies.store {
        store = given
    } else {
        store = try await openConversationStore(configuration: configuration, logger: logger)
    }
    let verifier: any TokenVerifier
    do {
        if let given = dependencies.verifier {
            verifier = given
        } else if configuration.isDevelopment {
            // Development tokens in development mode only; production trusts Cognito alone.
            verifier = try await DevTokenIssuer.load(dataDirectory: configuration.dataDirectory)
        } else {
            verifier = try await cognitoVerifier(configuration: configuration, logger: logger, announce: announce)
        }
    } catch {
        try? await store.close()
        throw error
    }
    let auditStore: any AuditStore
    do {
        if let given = dependencies.auditStore {
            auditStore = given
        } else {
            auditStore = try await openAuditStore(configuration: configuration, store: store, logger: logger)
        }
    } catch {
        try? await store.close()
        throw error
    }
    let audit = AuditWriter(store: auditStore, logger: logger)
    let metrics = dependencies.metrics ?? ServerMetrics(enabled: configuration.observability.metricsEnabled)
    await safetyData?.value
    let safety = dependencies.safety ?? ClinicalSafetyPolicy(detector: .shared, checker: .shared, triage: modelTriage(configuration: configuration, model: model, metrics: metrics, logger: logger))
    let registry = StreamRegistry(
        maxActiveStreamsPerUser: configuration.chat.maxActiveStreamsPerUser,
        retention: configuration.chat.replayRetention,
        replayMemoryBytes: configuration.chat.replayMemoryBytes,
        gracePeriod: configuration.limits.shutdownGracePeriod,
        maxRunning: configuration.chat.maxRunningAnswers,
        logger: logger
    )
    // Durable answers: the replay log's group commit, this process's heartbeat and the recovery
    // of dead processes' answers, and (on a shared PostgreSQL store) following other processes'
    // answers, woken by LISTEN/NOTIFY.
    let durability = configuration.durability
    let recovery = StreamRecovery(store: store, instanceId: Identifier.make("i"), heartbeatInterval: durability.heartbeatInterval, staleAfter: durability.staleAfter, logger: logger)
    let journal = durability.journalInterval.map { StreamJournal(store: store, interval: $0, logger: logger) }
    let shared = postgresStore(in: store)
    let notifier: PostgresStreamNotifier?
    if let shared, let settings = configuration.database {
        notifier = try PostgresStreamNotifier(settings: settings, credentials: databaseCredentials(settings, environment: configuration.processEnvironment), store: shared, logger: logger)
    } else {
        notifier = nil
    }
    shared?.enforce(.init(streamsPerUser: configuration.chat.maxActiveStreamsPerUser, connectionsPerUser: configuration.limits.maxConnectionsPerUser, staleAfter: durability.staleAfter))
    let followers = StreamFollowers(store: store, registry: registry, notifier: notifier, pollInterval: notifier == nil ? .milliseconds(250) : durability.followPollInterval, logger: logger)
    let chat = ChatService(model: model, store: store, configuration: configuration.chat, safety: safety, logger: logger, observer: metrics, registry: registry, journal: journal, followers: followers, instanceId: recovery.instanceId)
    chat.prepareSafety()
    // The store and then the audit writer come first so that they stop last: the writer appends
    // what it was given, then the store commits what it accepted and closes (the wrapped-key
    // store of an encrypted store after it). On PostgreSQL the audit log shares the store's pool,
    // which therefore must stop after the writer.
    var services: [any Service] = storeServices(for: store) + [audit]
    // EMF records are written until everything else has stopped, then once more.
    if let emf = metrics.emf { services.append(emf) }
    // Answers the store refused are written again; it stops (after one last try) before the store closes.
    services.append(chat.unsaved)
    // The notifier listens before anything follows; the journal and the heartbeat stop (the
    // journal after one last write) only once every answer has ended.
    if let notifier { services.append(notifier) }
    if let journal { services.append(journal) }
    services += [recovery, followers]
    if let engine = model as? any Service { services.append(engine) }
    return MedViewEngine(chat: chat, verifier: verifier, metrics: metrics, audit: audit, shared: shared, recovery: recovery, services: services)
}

/// Builds the service from its configuration. `medview serve` and the tests both call this.
///
/// Opens the store and loads the model now (so a bad setting is refused before anything
/// listens); one-time work that needs them, such as failing answers a crash interrupted, runs
/// just before the server starts listening.
///
/// - Parameter onServerRunning: called with the bound port once the server listens.
public func buildApplication(
    configuration: ServerConfiguration,
    dependencies: AppDependencies = .init(),
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> MedViewApplication {
    let logger = dependencies.logger
    let announce = dependencies.announce
    if configuration.isDevelopment, !configuration.allowDevTokensOnNetwork, !HostName.isLoopback(configuration.host) {
        throw StartupError(description: "development mode accepts development tokens, which anyone can mint: it listens on a loopback address only (127.0.0.1, ::1 or localhost), not '\(configuration.host)'. Use --environment production with Cognito, or, on a network you trust, --allow-dev-tokens-on-network (MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK=1).")
    }
    if !configuration.isDevelopment, configuration.cognito == nil, dependencies.verifier == nil {
        throw StartupError(description: "environment 'production' needs Amazon Cognito: set --cognito-issuer and --cognito-client-id (or MEDVIEW_COGNITO_ISSUER and MEDVIEW_COGNITO_CLIENT_ID); refusing to start rather than accept development tokens.")
    }
    let engine = try await buildEngine(configuration: configuration, dependencies: dependencies)
    let (chat, verifier, metrics, audit, shared, recovery) = (engine.chat, engine.verifier, engine.metrics, engine.audit, engine.shared, engine.recovery)
    let model = chat.model
    let limits = configuration.limits
    let sweeper = SessionSweeper(tick: min(.seconds(1), limits.idleTimeout / 4, limits.keepAliveInterval / 2))
    let server = makeHTTPServer(
        configuration: configuration,
        chat: chat,
        verifier: verifier,
        metrics: metrics,
        audit: audit,
        sweeper: sweeper,
        sharedConnections: shared,
        instanceId: recovery.instanceId,
        logger: logger,
        beforeServerStarts: {
            // A store this process alone uses (SQLite) has no live owner for any streaming
            // answer at start-up; on a shared one, only silent processes' answers are orphans.
            let interrupted = try await recovery.recoverAtStartup(exclusive: shared == nil)
            if interrupted > 0 {
                logger.warning("startup.interrupted_streams", metadata: ["streams.count": "\(interrupted)"])
            }
        },
        onServerRunning: { port in
            announceStartup(configuration: configuration, port: port, verifier: verifier, model: model.descriptor, announce: announce)
            await onServerRunning(port)
        }
    )
    var services = engine.services
    // Shut down in reverse: the registry drains the answers, the sweeper lets sessions write out
    // their last events, the server closes the sockets, then the model engine and the store stop.
    if let metricsPort = configuration.observability.metricsPort {
        services.append(makeMetricsServer(configuration: configuration, port: metricsPort, chat: chat, metrics: metrics, logger: logger, announce: announce))
    }
    services += [server, sweeper, chat.registry]
    return MedViewApplication(chat: chat, verifier: verifier, metrics: metrics, audit: audit, services: services, logger: logger)
}

/// Closes a store that has no writer Service of its own on graceful shutdown, after every other
/// service has stopped.
struct StoreService: Service {
    let store: any ConversationStore

    func run() async throws {
        try? await gracefulShutdown()
        try await store.close()
    }
}

/// What a person starting the server needs to know: where it listens, which identity and model
/// it trusts, where its data is.
func announceStartup(configuration: ServerConfiguration, port: Int, verifier: any TokenVerifier, model d: ModelDescriptor, announce: @Sendable (String) -> Void) {
    announce("MedView Companion listening on http://\(configuration.host):\(port)")
    announce("  WebSocket: ws://\(configuration.host):\(port)/v1/ws   SSE: POST http://\(configuration.host):\(port)/v1/conversations/{id}/messages")
    if let devIssuer = verifier as? DevTokenIssuer {
        announce("  DEV MODE: development tokens are accepted (key: \(devIssuer.keyPath)). Not for production.")
        if !HostName.isLoopback(configuration.host) {
            announce("  !!! WARNING: DEVELOPMENT TOKENS ON THE NETWORK (--allow-dev-tokens-on-network): anyone who can reach \(configuration.host):\(port) and holds a development token can act as ANY user. Use only on a network you trust, never with real patient data. !!!")
        }
        announce("  Get a token: medview token --user alice --data-dir \(configuration.dataDirectory)")
        if configuration.cognito != nil {
            announce("  Cognito settings are ignored in development mode (use --environment production).")
        }
    } else if let cognito = configuration.cognito {
        announce("  PRODUCTION: Amazon Cognito tokens only (issuer \(cognito.issuer), app client \(cognito.clientId)); no development tokens.")
        announce("  Page sign-in: \(cognito.domain.map { "Hosted UI at \($0)" } ?? "no Hosted UI domain set (--cognito-domain); the page cannot sign in")")
    }
    if d.provider == "scripted" {
        announce("  Model: scripted (a deterministic test model, not medical advice).")
    } else {
        announce("  Model: \(d.provider):\(d.id)\(d.demo ? " (demo model, not medical-grade)" : "")")
        if d.provider == "local" {
            announce("  The local model is a small demo model running in-process: its answers are not medical advice. Configure a cloud model with --model for real use.")
        }
    }
    announce("  Data: \(configuration.database?.redactedDescription ?? configuration.databasePath)")
    announce("  Encryption at rest: \(configuration.encryption.describe(dataDirectory: configuration.dataDirectory))")
    if configuration.database != nil, case .local = configuration.encryption.provider {
        announce("  Every instance sharing this database needs this same master key file (copy it, or point --master-key-file at one place).")
    }
    announce("  Audit log: \(configuration.database == nil ? SQLiteAuditStore.path(dataDirectory: configuration.dataDirectory) : "table audit_log of the database")")
}

/// The Cognito verifier for production, with its keys fetched now. A key set that cannot be
/// fetched at start-up is reported, not fatal: it is fetched again when the first token arrives.
func cognitoVerifier(configuration: ServerConfiguration, logger: Logger, announce: @Sendable (String) -> Void) async throws -> CognitoTokenVerifier {
    guard let settings = configuration.cognito else {
        throw StartupError(description: "Amazon Cognito is not configured.")
    }
    let verifier = CognitoTokenVerifier(settings: settings, logger: logger)
    do {
        let count = try await verifier.prefetch()
        logger.info("auth.cognito.ready", metadata: ["jwks.keys": "\(count)"])
    } catch {
        announce("  WARNING: could not fetch the Cognito signing keys from \(settings.jwksURL) yet; sign-ins fail until it answers.")
    }
    return verifier
}

/// The model's second opinion on each message, for cloud models only (a small local model is no
/// judge of emergencies): one category word, temperature 0, within the configured budget.
func modelTriage(configuration: ServerConfiguration, model: any ChatModel, metrics: ServerMetrics, logger: Logger) -> ModelTriage? {
    guard configuration.safetyTriage, ["bedrock", "anthropic", "openai"].contains(model.descriptor.provider) else { return nil }
    let provider = model.descriptor.provider
    let counters = ModelTriage.Counters { outcome in metrics.safetyTriage(provider: provider, outcome: outcome.name) }
    // Every check's budget is kept by one shared timer on its own thread (not a Dispatch timer
    // per message), disarmed when the check ends first.
    let timer = CoarseTimer(tick: CoarseTimer.tick(for: configuration.safetyTriageBudget))
    let deadline: ModelTriage.Deadline = { after, action in
        let id = timer.schedule(at: .now + after, action)
        return { timer.cancel(id) }
    }
    return ModelTriage(budget: configuration.safetyTriageBudget, counters: counters, detector: .shared, deadline: deadline) { system, message in
        // One word is wanted: an unstreamed reply (ChatModel.reply) costs the provider and this
        // server less than a stream of one or two events.
        try await model.reply(ModelRequest(system: system, messages: [ModelMessage(role: .user, text: message)], maxOutputTokens: 4, temperature: 0))
    }
}
