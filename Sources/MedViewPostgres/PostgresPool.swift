import Logging
import MedViewCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The store's connections: postgres-nio's `PostgresClient` pool, run as a `Service`, renewed
/// when its password expires.
///
/// With a fixed password one client serves for the life of the process. With IAM
/// authentication a token is valid for 15 minutes and the pool's configuration is fixed, so every
/// ``rotationInterval`` (10 minutes by default, under the token's lifetime) a new client with a
/// fresh token takes the new calls, and the old one closes once its running calls finish. Every
/// connection is therefore opened with a token at most ``rotationInterval`` old.
///
/// Lifecycle: ``run()`` (in the application's `ServiceGroup`) starts the pool; calls made before
/// that wait for it. Graceful shutdown or ``close()`` stop new calls, let running ones finish,
/// then close every connection. Invariant: each call runs on exactly one client generation,
/// which stays open until the call ends.
public final class PostgresPool: Service, Sendable {
    /// Makes the client configuration for a new generation (a fresh IAM token each time).
    typealias ConfigurationFactory = @Sendable () async throws -> PostgresClient.Configuration

    /// How often the client is replaced; `nil` for a fixed password.
    public let rotationInterval: Duration?
    private let makeConfiguration: ConfigurationFactory
    private let logger: Logger
    private let state = Mutex(State())
    /// Fires when the pool has a client, or is closing (callers waiting for the start wake up).
    private let started = Signal()
    /// Fires when closing begins.
    private let closing = Signal()
    /// Fires when every connection is closed.
    private let finished = Signal()

    private struct State {
        var current: Generation?
        var closing = false
        var running = false
        var generations = 0
    }

    init(rotationInterval: Duration?, logger: Logger, makeConfiguration: @escaping ConfigurationFactory) {
        self.rotationInterval = rotationInterval
        self.makeConfiguration = makeConfiguration
        self.logger = logger
    }

    /// How many clients this pool has started (1 without rotation); for tests and logs.
    public var generationCount: Int { state.withLock { $0.generations } }

    /// Whether ``run()`` is serving calls.
    public var isRunning: Bool { state.withLock { $0.running && !$0.closing } }

    /// Runs `body` on a pooled connection.
    /// - Throws: ``MedViewCore/StoreError/unavailable(_:)`` once the pool is closing or closed;
    ///   otherwise what `body` or the connection attempt throws.
    func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let generation = try await acquire()
        defer { generation.release() }
        return try await generation.client.withConnection { connection in
            try await body(connection)
        }
    }

    private func acquire() async throws -> Generation {
        while true {
            enum Next { case use(Generation), wait, closed }
            let next = state.withLock { state -> Next in
                if state.closing { return .closed }
                guard let current = state.current else { return .wait }
                current.acquire()
                return .use(current)
            }
            switch next {
            case .use(let generation): return generation
            case .closed: throw StoreError.unavailable("store is closed")
            case .wait:
                await started.wait()
                try Task.checkCancellation()
            }
        }
    }

    /// Starts the first client, renews it every ``rotationInterval`` if set, and on graceful
    /// shutdown (or ``close()``) drains and closes every connection; then waits for the group's
    /// graceful shutdown so that an early ``close()`` is not taken for a crash.
    public func run() async throws {
        let alreadyClosing = state.withLock { state -> Bool in
            state.running = true
            return state.closing
        }
        if !alreadyClosing {
            do {
                try await withGracefulShutdownHandler {
                    try await serve()
                } onGracefulShutdown: {
                    self.beginClose()
                }
            } catch {
                // A client that cannot even be configured: callers waiting in `close()` return.
                finished.fire()
                throw error
            }
        }
        finished.fire()
        if !Task.isCancelled {
            try? await gracefulShutdown()
        }
    }

    private func serve() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            do {
                let first = try await makeGeneration()
                group.addTask { await first.run() }
                install(first)
            } catch {
                beginClose()
                throw error
            }
            // After a failed renewal, try again within 30 s rather than a whole interval.
            var wait = rotationInterval
            while !closing.isFired {
                if let interval = rotationInterval, let pause = wait {
                    await withTaskGroup(of: Void.self) { race in
                        race.addTask { try? await Task.sleep(for: pause) }
                        race.addTask { await self.closing.wait() }
                        await race.next()
                        race.cancelAll()
                    }
                    if closing.isFired || Task.isCancelled { break }
                    do {
                        let next = try await makeGeneration()
                        group.addTask { await next.run() }
                        install(next)
                        wait = interval
                        logger.debug("store.pool.rotated", metadata: ["pool.generation": "\(generationCount)"])
                    } catch {
                        // The old client keeps serving (its open connections stay valid).
                        wait = min(interval, .seconds(30))
                        logger.info("store.pool.rotation_failed", metadata: ["error.type": "\(type(of: error))"])
                    }
                } else {
                    await closing.wait()
                    if Task.isCancelled { break }
                }
            }
            beginClose()
        }
    }

    private func makeGeneration() async throws -> Generation {
        var configuration = try await makeConfiguration()
        configuration.options.maximumConnections = max(1, configuration.options.maximumConnections)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return Generation(client: client)
    }

    /// Makes `generation` the one new calls use, and retires the one it replaces.
    private func install(_ generation: Generation) {
        let (old, rejected) = state.withLock { state -> (Generation?, Bool) in
            if state.closing { return (nil, true) }
            defer {
                state.current = generation
                state.generations += 1
            }
            return (state.current, false)
        }
        if rejected { generation.retire() }
        old?.retire()
        started.fire()
    }

    /// Stops new calls; running calls finish, then each client closes.
    private func beginClose() {
        let current = state.withLock { state -> Generation? in
            state.closing = true
            defer { state.current = nil }
            return state.current
        }
        current?.retire()
        closing.fire()
        started.fire()
    }

    /// Stops new calls, lets running ones finish, and closes every connection. Later calls throw
    /// ``MedViewCore/StoreError/unavailable(_:)``. Closing twice is harmless.
    public func close() async {
        beginClose()
        let running = state.withLock { $0.running }
        if running { await finished.wait() }
    }
}

/// One `PostgresClient` and the calls running on it.
private final class Generation: Sendable {
    let client: PostgresClient
    private let state = Mutex((inFlight: 0, retired: false))
    private let drained = Signal()

    init(client: PostgresClient) {
        self.client = client
    }

    func acquire() {
        state.withLock { $0.inFlight += 1 }
    }

    func release() {
        let done = state.withLock { state -> Bool in
            state.inFlight -= 1
            return state.retired && state.inFlight == 0
        }
        if done { drained.fire() }
    }

    /// No new calls come; the client closes when the running ones end.
    func retire() {
        let done = state.withLock { state -> Bool in
            state.retired = true
            return state.inFlight == 0
        }
        if done { drained.fire() }
    }

    /// The longest running calls are waited for when the pool is cancelled outright (not shut
    /// down gracefully) before the client itself is cancelled.
    static let cancellationDrain: Duration = .seconds(10)

    /// Runs the client until it is retired and drained.
    ///
    /// The client runs in a task of its own, not a child: cancelling the pool outright (a Lambda
    /// environment frozen and shut down, a service group torn down) retires the generation, lets
    /// the calls already running end (for at most ``cancellationDrain``) and only then cancels the
    /// client. A `PostgresClient` cancelled under a running call can leave that call waiting for
    /// ever (postgres-nio), so the call is never raced with the client's cancellation.
    func run() async {
        let client = self.client
        let clientTask = Task { await client.run() }
        await withTaskCancellationHandler {
            await drained.wait()
        } onCancel: {
            self.retire()
        }
        if !drained.isFired {
            // Cancelled: wait (in a task that the cancellation does not reach) for the running calls.
            let drained = self.drained
            await Task {
                await withTaskGroup(of: Void.self) { race in
                    race.addTask { await drained.wait() }
                    race.addTask { try? await Task.sleep(for: Self.cancellationDrain) }
                    await race.next()
                    race.cancelAll()
                }
            }.value
        }
        clientTask.cancel()
        await clientTask.value
    }
}
