import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Why the stand-in could not do what was asked.
public enum LambdaStandInError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No function of this name is configured.
    case unknownFunction(String)

    public var description: String {
        switch self {
        case .unknownFunction(let name): "The Lambda stand-in has no function named '\(name)'."
        }
    }
}

/// A loopback stand-in for the AWS side of the serverless shape, for tests and development:
///
/// - **Lambda Runtime API** (2018-06-01), one listener per function (``runtimeAPI(for:)`` is the
///   function's `AWS_LAMBDA_RUNTIME_API`). Any number of runtime processes ("execution
///   environments") may poll `next` at once; each invocation goes to exactly one idle poller and
///   waits in order while none is idle. Responses buffered or streamed (with error trailers),
///   `/error`, `/init/error`, deadlines (`Task.TimedOut`); see ``LambdaRuntimeAPIServer``.
/// - **API Gateway WebSocket API** at ``webSocketURL``: the upgrade invokes `$connect`
///   synchronously (a non-2xx reply refuses the upgrade with its status, a reply without
///   `Sec-WebSocket-Protocol` when the client offered one with 400, a function error with 502);
///   each message invokes `$default` on its own (a long
///   invocation does not hold up the next message, which goes to another environment); the close
///   invokes `$disconnect`. Messages over 128 KB, or frames over 32 KB, close with 1009.
/// - **Management API** at ``managementEndpoint`` (`POST`/`GET`/`DELETE /@connections/{id}`),
///   SigV4-verified as `execute-api`, with errors botocore maps to `GoneException`,
///   `PayloadTooLargeException`, `LimitExceededException`, `ForbiddenException`.
/// - **Function URL** at ``functionURL`` in RESPONSE_STREAM mode: the request becomes a
///   payload-2.0 event; a streamed reply's http-integration prelude sets status and headers and
///   the rest streams through as it arrives.
///
/// It logs ids, routes and error types, never message text or bodies.
public final class LambdaStandIn: Service, Sendable {
    public let configuration: LambdaStandInConfiguration
    let logger: Logger
    let queues: [String: LambdaFunctionQueue]
    let connections = Mutex([String: APIGatewayConnection]())
    /// The gateway's open TCP connections (WebSocket API and Management API).
    let gatewayChannels = OpenChannels()
    let jobs: AsyncStream<@Sendable () async -> Void>
    let jobQueue: AsyncStream<@Sendable () async -> Void>.Continuation
    /// The function URL's id (its domain's first label).
    let functionURLID = "standin0url"

    private struct Listening {
        var runtimePorts: [String: Int] = [:]
        var gatewayPort: Int?
        var functionURLPort: Int?
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let listening = Mutex(Listening())
    /// The parts of ``run()`` still running (`gateway`, `function-url`, `runtime:NAME`, `jobs`):
    /// what a forced shutdown names.
    private let runningParts = Mutex<Set<String>>([])

    /// Runs `body` as the part `name` of ``run()``, recorded in ``runningParts`` while it runs.
    private func part<T>(_ name: String, _ body: () async throws -> T) async rethrows -> T {
        runningParts.withLock { _ = $0.insert(name) }
        defer { runningParts.withLock { _ = $0.remove(name) } }
        return try await body()
    }

    public init(configuration: LambdaStandInConfiguration = .init(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var queues: [String: LambdaFunctionQueue] = [:]
        for name in configuration.functionNames {
            queues[name] = LambdaFunctionQueue(name: name, arn: configuration.functionARN(name), timeout: configuration.functionTimeout)
        }
        self.queues = queues
        (jobs, jobQueue) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
    }

    // MARK: - Addresses

    /// `HOST:PORT` of the function's Runtime API (its `AWS_LAMBDA_RUNTIME_API`); port 0 before the
    /// stand-in listens (see ``waitUntilListening()``) and for a function it does not have.
    public func runtimeAPI(for function: String) -> String {
        let port = listening.withLock { $0.runtimePorts[function] } ?? 0
        return "\(configuration.host):\(port)"
    }

    /// `ws://HOST:PORT/STAGE`: the WebSocket API clients connect to (any path is accepted).
    public var webSocketURL: URL { url("ws", port: listening.withLock { $0.gatewayPort }, path: "/\(configuration.stage)") }

    /// `http://HOST:PORT/STAGE`: the Management API's endpoint (botocore's `endpoint_url`).
    public var managementEndpoint: URL { url("http", port: listening.withLock { $0.gatewayPort }, path: "/\(configuration.stage)") }

    /// `http://HOST:PORT/`: the function URL (RESPONSE_STREAM).
    public var functionURL: URL { url("http", port: listening.withLock { $0.functionURLPort }, path: "/") }

    func url(_ scheme: String, port: Int?, path: String) -> URL {
        var components = URLComponents()
        components.scheme = scheme
        components.host = configuration.host
        components.port = port ?? 0
        components.path = path
        return components.url ?? URL(fileURLWithPath: "/")
    }

    /// Returns once every listener (each Runtime API, the WebSocket API, the function URL) is
    /// bound, or the stand-in stopped.
    public func waitUntilListening() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = listening.withLock { state -> Bool in
                if isComplete(state) { return true }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private func isComplete(_ state: Listening) -> Bool {
        state.stopped || state.runtimePorts.count == queues.count && state.gatewayPort != nil
            && (configuration.functionURLFunction == nil || state.functionURLPort != nil)
    }

    private func update(_ change: (inout Listening) -> Void) {
        let waiters = listening.withLock { state -> [CheckedContinuation<Void, Never>] in
            change(&state)
            guard isComplete(state) else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - Invoking

    /// Invokes a function directly (like Lambda's `Invoke`), returning once the runtime started
    /// its response. Throws ``LambdaStandInError`` or the ``LambdaFunctionError`` the invocation
    /// failed with before its first byte.
    public func invoke(function: String, payload: [UInt8]) async throws -> LambdaInvocationReply {
        guard let queue = queues[function] else { throw LambdaStandInError.unknownFunction(function) }
        return try await queue.invoke(payload).reply()
    }

    /// How many invocations the function has received.
    public func invocationCount(of function: String) -> Int { queues[function]?.invocationCount ?? 0 }

    /// How many execution environments are waiting in `next` for the function.
    public func idleEnvironments(of function: String) -> Int { queues[function]?.idlePollers ?? 0 }

    /// The errors the function's environments reported through `/runtime/init/error`.
    public func initErrors(of function: String) -> [LambdaFunctionError] { queues[function]?.initErrors ?? [] }

    /// The ids of the open WebSocket connections.
    public var connectionIDs: [String] { connections.withLock { Array($0.keys) } }

    /// Runs `job` in the stand-in's task group (`$default` and `$disconnect` invocations).
    func submit(_ job: @escaping @Sendable () async -> Void) {
        jobQueue.yield(job)
    }

    // MARK: - Running

    /// Serves until cancelled or until graceful shutdown; queued and waiting invocations then
    /// fail with `Runtime.ShutDown` and waiting runtimes get 500.
    public func run() async throws {
        let logger = logger
        let host = configuration.host
        defer { update { $0.stopped = true } }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    for (name, queue) in queues {
                        group.addTask {
                            try await self.part("runtime:\(name)") {
                                try await cancelWhenGracefulShutdown {
                                    try await LambdaRuntimeAPIServer(queue: queue, host: host, logger: logger).run { port in
                                        self.update { $0.runtimePorts[name] = port }
                                    }
                                }
                            }
                        }
                    }
                    group.addTask {
                        try await self.part("gateway") { try await self.gatewayApplication { port in self.update { $0.gatewayPort = port } }.run() }
                    }
                    if let function = configuration.functionURLFunction {
                        group.addTask {
                            try await self.part("function-url") { try await self.functionURLApplication(function: function) { port in self.update { $0.functionURLPort = port } }.run() }
                        }
                    }
                    group.addTask {
                        await self.part("jobs") {
                            await cancelWhenGracefulShutdown {
                                await withDiscardingTaskGroup { jobs in
                                    for await job in self.jobs { jobs.addTask { await job() } }
                                }
                            }
                        }
                    }
                }
            } onGracefulShutdown: {
                self.stop()
            }
        } onCancel: {
            self.stop()
        }
    }

    /// Fails what waits on the Runtime API and closes every client's WebSocket (1001, as a
    /// gateway going away does); after ``closeGrace`` it drops every gateway connection still
    /// open: the WebSocket server's graceful shutdown waits for its connections, and a client
    /// that keeps its socket open, or never answers the closing handshake, would otherwise hold
    /// it for ever.
    func stop() {
        for queue in queues.values { queue.stop() }
        for connection in connections.withLock({ Array($0.values) }) {
            connection.close(code: 1001, reason: "Going Away")
        }
        let channels = gatewayChannels
        Task {
            try? await Task.sleep(for: Self.closeGrace)
            channels.closeAll()
        }
    }

    /// How long stopping waits for the gateway's connections to close by themselves.
    static let closeGrace: Duration = .seconds(1)

    /// Runs a stand-in for the duration of `body` (listening before `body` starts), then shuts
    /// it down.
    public static func withRunning<T: Sendable>(configuration: LambdaStandInConfiguration = .init(), logger: Logger? = nil,
                                                _ body: @escaping @Sendable (LambdaStandIn) async throws -> T) async throws -> T {
        var quiet = Logger(label: "lambda-standin")
        quiet.logLevel = .error
        let standIn = LambdaStandIn(configuration: configuration, logger: logger ?? quiet)
        let group = ServiceGroup(configuration: .init(services: [standIn], logger: logger ?? quiet))
        // The stand-in runs in a task of its own, not a child, so that a shutdown that never
        // ends cannot hold the caller: about one Lambda shape suite run in eight, the gateway's
        // Hummingbird application did not finish shutting down, gracefully or when cancelled,
        // although every WebSocket handler had returned (suspect: a Management API request from
        // an environment that stopped mid-request; not proven). After ``shutdownBound`` it is
        // cancelled and left behind, and `lambda.standin.shutdown_forced` is logged.
        let (ended, endedContinuation) = AsyncStream.makeStream(of: Void.self)
        let running = Task {
            try? await group.run()
            endedContinuation.finish()
        }
        await standIn.waitUntilListening()
        let result: Result<T, any Error>
        do {
            result = .success(try await body(standIn))
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        if await !finishes(ended, within: Self.shutdownBound) {
            running.cancel()
            (logger ?? quiet).error("lambda.standin.shutdown_forced", metadata: [
                "bound.seconds": "\(Self.shutdownBound.components.seconds)",
                "still.running": "\(standIn.runningParts.withLock { $0.sorted() })",
                "invocations.unfinished": "\(standIn.queues.mapValues(\.unfinishedCount).filter { $0.value > 0 })",
                "websocket.connections": "\(standIn.connectionIDs.count)",
                "gateway.channels.open": "\(standIn.gatewayChannels.count)",
            ])
        }
        return try result.get()
    }

    /// How long ``withRunning(configuration:logger:_:)`` waits for the stand-in's graceful
    /// shutdown before it cancels the stand-in and returns.
    static let shutdownBound: Duration = .seconds(10)
}

/// Whether `ended` finishes within `bound`: for shutdowns that run in a task of their own and
/// must not hold the caller past a bound (the stand-in here, the Lambda shape tests' execution
/// environments).
public func finishes(_ ended: AsyncStream<Void>, within bound: Duration) async -> Bool {
    await withTaskGroup(of: Bool.self) { race in
        race.addTask {
            for await _ in ended {}
            return !Task.isCancelled
        }
        race.addTask {
            try? await Task.sleep(for: bound)
            return false
        }
        let first = await race.next() ?? false
        race.cancelAll()
        return first
    }
}
