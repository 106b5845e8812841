import Foundation
import Logging
import MedViewClient
import MedViewCore
import MedViewModels
import MedViewServer
import ServiceLifecycle
import Synchronization

/// A live `medview serve` application (the one `buildApplication` makes) on a loopback port, with
/// a SQLite store in `dataDirectory`: the client tests talk to the real server, through a
/// ``FaultProxy``. It can be stopped and started again on the same data directory.
final class TestServer: Sendable {
    let port: Int
    let issuer: DevTokenIssuer
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    private init(port: Int, issuer: DevTokenIssuer, group: ServiceGroup, running: Task<Void, any Error>) {
        self.port = port
        self.issuer = issuer
        self.group = group
        self.running = running
    }

    static func start(
        dataDirectory: String,
        model: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(5))),
        configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: dataDirectory)
        configuration.limits.shutdownGracePeriod = .seconds(2)
        configure(&configuration)
        var logger = Logger(label: "client-test-server")
        logger.logLevel = .critical
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(configuration: configuration, dependencies: AppDependencies(model: model, logger: logger)) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        guard let issuer = app.verifier as? DevTokenIssuer else { throw ProxyError("development mode expected") }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw ProxyError("the server did not start")
        }
        return TestServer(port: port, issuer: issuer, group: group, running: running)
    }

    /// Stops the server as SIGTERM does and waits until it has stopped.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
    }

    /// A token provider for `user`, counting its calls.
    func tokenProvider(user: String, lifetime: Duration = .seconds(600), calls: Counter = Counter()) -> TokenProvider {
        let issuer = self.issuer
        return { _ in
            calls.increment()
            return AccessToken(jwt: try await issuer.token(userId: user, lifetime: lifetime))
        }
    }
}

/// A thread-safe counter.
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// A fresh temporary directory, removed by `body`'s caller.
func temporaryDirectory() -> String {
    NSTemporaryDirectory() + "medview-client-test-" + UUID().uuidString
}

/// Runs `body` with a live server behind a fault proxy, and always stops both.
func withProxiedServer<T: Sendable>(
    model: any ChatModel = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(5))),
    configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (TestServer, FaultProxy, String) async throws -> T
) async throws -> T {
    let directory = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let server = try await TestServer.start(dataDirectory: directory, model: model, configure: configure)
    let proxy: FaultProxy
    do {
        proxy = try FaultProxy(upstreamPort: server.port)
    } catch {
        await server.stop()
        throw error
    }
    do {
        let result = try await body(server, proxy, directory)
        proxy.stop()
        await server.stop()
        return result
    } catch {
        proxy.stop()
        await server.stop()
        throw error
    }
}

/// A client configuration for tests: the proxy's address, short backoff.
func testConfiguration(port: Int) -> MedViewClientConfiguration {
    var configuration = MedViewClientConfiguration(baseURL: "http://127.0.0.1:\(port)")
    configuration.backoff = Backoff(base: .milliseconds(50), cap: .milliseconds(400))
    configuration.ackTimeout = .seconds(5)
    configuration.webSocketRetryInterval = .seconds(600)
    return configuration
}

/// Waits until `condition` holds, at most `timeout`.
func eventually(timeout: Duration = .seconds(15), _ condition: @Sendable () async -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw ProxyError("condition not met within \(timeout)")
}
