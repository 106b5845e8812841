import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A tiny HTTP server on a loopback port for credential-source tests: every request is recorded
/// and answered by `handler`. Always shut down when the body returns.
enum LoopbackHTTPServer {
    struct Recorded: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: String
    }

    struct Reply: Sendable {
        var status: Int
        var body: String
        init(_ status: Int, _ body: String = "") {
            self.status = status
            self.body = body
        }
    }

    final class Box: Sendable { let log = Mutex<[Recorded]>([]) }

    static func with<T: Sendable>(
        _ handler: @escaping @Sendable (Recorded) -> Reply,
        _ body: @escaping @Sendable (String, @escaping @Sendable () -> [Recorded]) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "loopback")
        logger.logLevel = .error
        let box = Box()
        @Sendable func respond(_ request: Request) async throws -> Response {
            let bytes = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let recorded = Recorded(method: request.method.rawValue, path: request.uri.path, headers: headers, body: String(buffer: bytes))
            box.log.withLock { $0.append(recorded) }
            let reply = handler(recorded)
            return Response(status: .init(code: reply.status), headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
        let router = Router()
        for path in ["/", "**"] {
            for method in [HTTPRequest.Method.get, .put, .post] {
                router.on(RouterPath(path), method: method) { request, _ in try await respond(request) }
            }
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask { try await group.run(); return nil }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await body("http://127.0.0.1:\(port)", { box.log.withLock { $0 } }))
            } catch {
                outcome = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            return try outcome.get()
        }
    }
}

/// A port on loopback with nothing listening (bound then closed).
func closedLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
