import Foundation
import HTTPTypes
import Logging
import MedViewCore
import MedViewModels
import MedViewPostgres
import MedViewProtocol
import MedViewServer
import MedViewStandIns
import MedViewTestSupport
import ServiceLifecycle
import Synchronization
import Testing

@testable import MedViewLambda

/// The Lambda function as AWS runs it, on loopback: ``LambdaStandIn`` plays API Gateway (the
/// WebSocket API and its Management API), the function URL and the Lambda Runtime API; the
/// function runs in this process as several execution environments (each its own engine, as
/// each Lambda environment is its own process), all on one PostgreSQL schema.
struct LambdaShape: Sendable {
    let standIn: LambdaStandIn
    let issuer: DevTokenIssuer
    let configuration: ServerConfiguration
    /// The engines of the execution environments.
    let functions: [LambdaFunction]

    func token(_ user: String, lifetime: Duration = .seconds(600)) async throws -> String {
        try await issuer.token(userId: user, lifetime: lifetime)
    }

    /// Connects a WebSocket client as `user` through API Gateway (Authorization header).
    func connect(_ user: String) async throws -> WSTestClient {
        try await WSTestClient.connect(url: standIn.webSocketURL.absoluteString, headers: [.authorization: "Bearer \(try await token(user))"])
    }

    /// The protocol scenarios every shape runs, on the function.
    var scenarios: ProtocolScenarios {
        ProtocolScenarios(connect: { try await connect($0) }, stored: { conversation, user in
            try await messages(conversation, user: user).map { ($0.status.rawValue, $0.text) }
        })
    }

    /// The stored messages of a conversation (read through one environment's store).
    func messages(_ conversationId: String, user: String) async throws -> [StoredMessage] {
        try await functions[0].engine.chat.store.messages(conversationId: conversationId, userId: user)
    }

    static var databaseURL: String? { ProcessInfo.processInfo.environment["MEDVIEW_TEST_DATABASE_URL"] }

    /// Runs `body` with `environments` execution environments polling the stand-in's Runtime
    /// API, on a PostgreSQL schema of its own (dropped afterwards); shuts all down after.
    static func with<T: Sendable>(
        environments: Int = 3,
        model: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1))),
        configure: (inout ServerConfiguration) -> Void = { _ in },
        functionTimeout: Duration = .seconds(60),
        _ body: @escaping @Sendable (LambdaShape) async throws -> T
    ) async throws -> T {
        let url = try #require(databaseURL)
        var database = try PostgresSettings.parse(url: url, poolSize: 3)
        database.schema = "medview_lambda_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let directory = NSTemporaryDirectory() + "medview-lambda-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["MEDVIEW_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let result = try await run(environments: environments, model: model, database: database, directory: directory, configure: configure, functionTimeout: functionTimeout, logger: logger, body)
            try? await PostgresConversationStore.dropSchema(settings: database, logger: logger)
            return result
        } catch {
            try? await PostgresConversationStore.dropSchema(settings: database, logger: logger)
            throw error
        }
    }

    /// The configuration both shapes use in these tests (the server's, on PostgreSQL).
    static func configuration(database: PostgresSettings, directory: String, configure: (inout ServerConfiguration) -> Void) -> ServerConfiguration {
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory)
        configuration.database = database
        configuration.limits.shutdownGracePeriod = .seconds(2)
        configuration.http.headerTimeout = .seconds(300)
        let keys = LambdaStandInConfiguration.testCredentials
        configuration.processEnvironment = ["AWS_ACCESS_KEY_ID": keys.accessKeyID, "AWS_SECRET_ACCESS_KEY": keys.secretAccessKey]
        configure(&configuration)
        return configuration
    }

    private static func run<T: Sendable>(environments: Int, model: any ChatModel, database: PostgresSettings, directory: String, configure: (inout ServerConfiguration) -> Void, functionTimeout: Duration, logger: Logger, _ body: @escaping @Sendable (LambdaShape) async throws -> T) async throws -> T {
        let configuration = Self.configuration(database: database, directory: directory, configure: configure)
        let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
        return try await LambdaStandIn.withRunning(configuration: LambdaStandInConfiguration(functionTimeout: functionTimeout), logger: logger) { standIn in
            let settings = LambdaSettings(runtimeAPI: standIn.runtimeAPI(for: "handler"), managementEndpoint: standIn.managementEndpoint, region: standIn.configuration.region, deadlineMargin: .seconds(2))
            var functions: [LambdaFunction] = []
            for _ in 0..<environments {
                functions.append(try await LambdaFunction.build(configuration: configuration, settings: settings, dependencies: AppDependencies(model: model, verifier: issuer, logger: logger)))
            }
            let group = ServiceGroup(configuration: .init(services: functions.map { .init(service: $0) }, logger: logger))
            // The environments run in a task of their own, not a child: if their graceful
            // shutdown does not finish, the test fails after the bound below instead of hanging
            // the whole run. (It did not finish one run in two while the runtime loop threw when
            // shutdown stopped it: the group then cancelled the other environments, and a
            // PostgreSQL call running when its client was cancelled never returned.)
            let (ended, endedContinuation) = AsyncStream.makeStream(of: Void.self)
            let shutdownError = Mutex<(any Error)?>(nil)
            let environmentsTask = Task {
                do {
                    try await group.run()
                } catch {
                    shutdownError.withLock { $0 = error }
                }
                endedContinuation.finish()
            }
            let ready = ContinuousClock.now + .seconds(30)
            while standIn.idleEnvironments(of: "handler") < environments, ContinuousClock.now < ready {
                try await Task.sleep(for: .milliseconds(10))
            }
            let shape = LambdaShape(standIn: standIn, issuer: issuer, configuration: configuration, functions: functions)
            let result: Result<T, any Error>
            do {
                result = .success(try await body(shape))
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            if await !finishes(ended, within: .seconds(10)) {
                environmentsTask.cancel()
                Issue.record("the execution environments did not finish their graceful shutdown within 10 s")
            } else if let error = shutdownError.withLock({ $0 }) {
                Issue.record("an execution environment's graceful shutdown failed: \(error)")
            }
            return try result.get()
        }
    }
}

/// An answer as a patient sees it: its events in order without chunk boundaries or sequence
/// numbers (both depend on timing), and its whole text.
func visibleAnswer(_ events: [ServerEvent]) -> [String] {
    var shown: [String] = []
    for event in events {
        if case .streamChunk = event { continue }
        let line = visible(event)
        shown.append(event.seq == nil ? line : String(line.drop { $0 != " " }.dropFirst()))
    }
    return shown + ["text: " + chunks(events).map(\.text).joined()]
}

/// An event as a patient sees it, without the ids that differ between runs (stream,
/// conversation, command): what must be the same from `medview serve` and from the function.
func visible(_ event: ServerEvent) -> String {
    let seq = event.seq.map { "#\($0) " } ?? ""
    switch event {
    case .ack(let a): return "ack\(a.duplicate == true ? " duplicate" : "")"
    case .streamStart: return seq + "stream.start"
    case .streamChunk(let c): return seq + "chunk " + c.text
    case .safetyAlert(let a): return seq + "alert \(a.category) \(a.severity) \(a.guidance)"
    case .safetyWarning(let w): return seq + "warning \(w.kind) \(w.drugs ?? []) \(w.severity) \(w.advice)"
    case .streamEnd(let e): return seq + "end \(e.finishReason)"
    case .error(let e): return seq + "error \(e.code.rawValue)"
    }
}
