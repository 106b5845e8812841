import AsyncHTTPClient
import Foundation
import Logging
import MedViewAWS
import MedViewCore
import MedViewServer
import NIOCore
import ServiceLifecycle

/// The Lambda function: one handler for every route (told apart by the event's shape) on the
/// same engine as `medview serve` (``buildEngine(configuration:dependencies:)``).
public struct MedViewFunction: LambdaHandler {
    let webSocket: @Sendable (URL) -> WebSocketRoutes
    let functionURL: FunctionURLRoutes
    let managementEndpoint: URL?
    let logger: Logger

    public func handle(_ invocation: LambdaInvocation, responder: LambdaResponder) async throws {
        let event: LambdaEvent
        do {
            event = try LambdaEvent.decode(Data(invocation.event.readableBytesView))
        } catch {
            throw LambdaErrorReport(type: "Function.UnrecognisedEvent", message: error.description)
        }
        switch event {
        case .webSocket(let event):
            guard let endpoint = managementEndpoint ?? Self.endpoint(of: event) else {
                throw LambdaErrorReport(type: "Function.NoManagementEndpoint", message: "The WebSocket event names no domain and stage; set MEDVIEW_WS_MANAGEMENT_ENDPOINT.")
            }
            let response = await webSocket(endpoint).handle(event, context: invocation.context)
            try await responder.send(response.buffer)
        case .functionURL(let event):
            try await functionURL.handle(event, context: invocation.context, responder: responder)
        }
    }

    /// `https://{domainName}/{stage}`: the Management API of the stage the event came through.
    static func endpoint(of event: WebSocketEvent) -> URL? {
        guard let domain = event.requestContext.domainName, let stage = event.requestContext.stage else { return nil }
        return URL(string: "https://\(domain)/\(stage)")
    }
}

/// Why the function refused to start (reported to Lambda's `/init/error`).
public struct LambdaStartupError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The function's process: the engine's services and the runtime loop, run by one `ServiceGroup`.
public struct LambdaFunction: Service {
    public let engine: MedViewEngine
    let runtime: LambdaRuntime
    let handler: MedViewFunction
    let logger: Logger

    /// Builds the function. A configuration it cannot serve is refused here, and reported to
    /// the Runtime API's `/init/error` before the error is thrown.
    ///
    /// - Parameters:
    ///   - configuration: the server's configuration, from the same environment variables as
    ///     `medview serve` (`ServerConfiguration.resolve`).
    ///   - dependencies: what tests supply instead (the model, the verifier…).
    public static func build(configuration: ServerConfiguration, settings: LambdaSettings, dependencies: AppDependencies = .init(), httpClient: HTTPClient = .shared) async throws -> LambdaFunction {
        let logger = dependencies.logger
        let client = try LambdaRuntimeClient(endpoint: settings.runtimeAPI)
        do {
            if configuration.database == nil, !settings.allowSQLite, dependencies.store == nil {
                throw LambdaStartupError("the Lambda function keeps conversations in PostgreSQL: set MEDVIEW_DATABASE_URL. SQLite lives on the execution environment's ephemeral /tmp, which vanishes with it and is not shared by concurrent invocations (MEDVIEW_LAMBDA_ALLOW_SQLITE=1 accepts it for local experiments only).")
            }
            if !configuration.isDevelopment, configuration.cognito == nil, dependencies.verifier == nil {
                throw LambdaStartupError("environment 'production' needs Amazon Cognito: set MEDVIEW_COGNITO_ISSUER and MEDVIEW_COGNITO_CLIENT_ID; refusing to start rather than accept development tokens.")
            }
            let engine = try await buildEngine(configuration: configuration, dependencies: dependencies)
            let connections: any GatewayConnectionStore = engine.shared ?? InMemoryGatewayConnections()
            let chained = AWSCachedCredentials(AWSCredentialChain.standard(environment: configuration.processEnvironment, httpClient: httpClient))
            let credentials: @Sendable () async throws -> SigV4Credentials = { try await chained.credentials().credentials }
            let limits = configuration.limits
            let chat = engine.chat
            let handler = MedViewFunction(
                webSocket: { endpoint in
                    WebSocketRoutes(
                        chat: chat, verifier: engine.verifier, connections: connections,
                        management: ManagementAPI(endpoint: endpoint, region: settings.region, credentials: credentials, httpClient: httpClient),
                        limits: limits, audit: engine.audit, metrics: engine.metrics, deadlineMargin: settings.deadlineMargin, logger: logger
                    )
                },
                functionURL: FunctionURLRoutes(chat: chat, verifier: engine.verifier, limits: limits, audit: engine.audit, metrics: engine.metrics, deadlineMargin: settings.deadlineMargin, logger: logger),
                managementEndpoint: settings.managementEndpoint,
                logger: logger
            )
            return LambdaFunction(engine: engine, runtime: LambdaRuntime(client: client, logger: logger), handler: handler, logger: logger)
        } catch {
            let message = String(describing: error)
            try? await client.reportInitError(LambdaErrorReport(type: "Runtime.InitError", message: message))
            throw error
        }
    }

    /// Runs the engine's services and the runtime loop until the loop ends (a 500 from the
    /// Runtime API) or the task is cancelled; then shuts the engine down (the store last).
    public func run() async throws {
        let loop = RuntimeLoopService(runtime: runtime, handler: handler, recovery: engine.recovery, logger: logger)
        let services: [ServiceGroupConfiguration.ServiceConfiguration] =
            (engine.services + [engine.chat.registry]).map { .init(service: $0) }
            + [.init(service: loop, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)]
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm], logger: logger))
        try await group.run()
    }
}

extension LambdaFunction: CustomStringConvertible {
    public var description: String { "LambdaFunction" }
}

/// The runtime loop as a `Service`, started once the engine's services run (the store's pool
/// among them): it first stores the answers of dead environments as interrupted, then serves
/// invocations. It ends the group when it ends.
struct RuntimeLoopService: Service, CustomStringConvertible {
    let runtime: LambdaRuntime
    let handler: MedViewFunction
    let recovery: StreamRecovery
    let logger: Logger

    var description: String { "LambdaRuntimeLoop" }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            // Other environments share the store: only silent ones' answers are orphans.
            let interrupted = try await recovery.recoverAtStartup(exclusive: false)
            if interrupted > 0 {
                logger.warning("startup.interrupted_streams", metadata: ["streams.count": "\(interrupted)"])
            }
            do {
                try await runtime.run(handler)
            } catch where Task.isCancelled {
                // Graceful shutdown cancels the loop, which ends its `next` poll with an error:
                // that is how it stops, not a failure. Thrown, it would make the environment's
                // shutdown look failed, and a group running several (the tests') would cancel
                // the others' orderly shutdown under their last database writes.
                logger.debug("lambda.runtime.stopped")
            }
        }
    }
}

extension LambdaFunction {
    /// Reports a start-up failure that happened before the function could be built (a bad
    /// setting) to the Runtime API at `runtimeAPI`, so Lambda shows it as `Runtime.InitError`.
    public static func reportInitFailure(runtimeAPI: String?, message: String) async {
        guard let runtimeAPI, let client = try? LambdaRuntimeClient(endpoint: runtimeAPI) else { return }
        try? await client.reportInitError(LambdaErrorReport(type: "Runtime.InitError", message: message))
    }
}
