import Foundation
import MedViewServer
import Synchronization
import Testing

/// The HTTP layer times out and says no (issue 12, item 2), tested with raw sockets: an HTTP
/// client library would refuse to send most of these requests.
@Suite(.timeLimit(.minutes(2))) struct HTTPLayerLimitsTests {
    static let healthz = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"

    @Test("a request head that never completes gets 408 request_timeout, and the connection closes")
    func slowHeadTimesOut() async throws {
        try await LiveServer.with(configure: { $0.http.headerTimeout = .milliseconds(500) }) { server in
            let socket = try RawSocket(port: server.port)
            await socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            let started = ContinuousClock.now
            let response = try #require(await socket.response(timeout: .seconds(20)))
            #expect(response.status == 408)
            #expect(response.errorCode == "request_timeout")
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(await socket.waitForClose(timeout: .seconds(20)))
            // Without the timeout the head would be waited for as long as the client likes.
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }

    @Test("dripping a head a byte at a time does not extend the header timeout")
    func drippedHeadTimesOut() async throws {
        try await LiveServer.with(configure: { $0.http.headerTimeout = .milliseconds(600) }) { server in
            let socket = try RawSocket(port: server.port)
            let started = ContinuousClock.now
            // A drip of about 20 s, far past the 600 ms timeout, unless the server cuts it off.
            let drip = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Drip: " + String(repeating: "a", count: 400)
            for byte in drip.utf8 {
                guard await socket.send([byte]) else { break }
                try await Task.sleep(for: .milliseconds(50))
                if ContinuousClock.now - started > .seconds(20) { break }
            }
            #expect(await socket.waitForClose(timeout: .seconds(20)))
            #expect(RawResponse(parsing: socket.received)?.status == 408)
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    @Test("a connection that sends nothing is closed after the header timeout, without an answer")
    func silentConnectionCloses() async throws {
        try await LiveServer.with(configure: { $0.http.headerTimeout = .milliseconds(400) }) { server in
            let socket = try RawSocket(port: server.port)
            #expect(await socket.waitForClose(timeout: .seconds(20)))
            #expect(socket.received.isEmpty)
        }
    }

    @Test("an idle keep-alive connection is closed after the idle timeout; before it, it serves the next request")
    func idleKeepAliveCloses() async throws {
        try await LiveServer.with(configure: {
            $0.http.idleTimeout = .seconds(3)
            $0.http.headerTimeout = .seconds(30)
        }) { server in
            let socket = try RawSocket(port: server.port)
            await socket.send(Self.healthz)
            #expect(await socket.response()?.status == 200)
            try await Task.sleep(for: .milliseconds(200))
            let served = socket.received.count
            // The idle clock restarts when the second response is written, after this instant.
            let started = ContinuousClock.now
            await socket.send(Self.healthz)
            #expect(await socket.wait(timeout: .seconds(20)) { $0.received.count >= 2 * served })
            #expect(await socket.waitForClose(timeout: .seconds(20)))
            #expect(ContinuousClock.now - started >= .milliseconds(2500))
            #expect(socket.received.count == 2 * served)
        }
    }

    @Test("an over-long request line gets 414 uri_too_long and the connection closes")
    func longRequestLine() async throws {
        try await LiveServer.with { server in
            let socket = try RawSocket(port: server.port)
            await socket.send("GET /healthz?" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = try #require(await socket.response())
            #expect(response.status == 414)
            #expect(response.errorCode == "uri_too_long")
            #expect(await socket.waitForClose(timeout: .seconds(30)))
        }
    }

    @Test("too many header fields get 431 headers_too_large and the connection closes")
    func tooManyHeaders() async throws {
        try await LiveServer.with { server in
            let socket = try RawSocket(port: server.port)
            let fields = (0..<150).map { "X-Field-\($0): 1\r\n" }.joined()
            await socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + fields + "\r\n")
            let response = try #require(await socket.response())
            #expect(response.status == 431)
            #expect(response.errorCode == "headers_too_large")
            #expect(await socket.waitForClose(timeout: .seconds(30)))
        }
    }

    @Test("an over-large header gets 431 headers_too_large before the whole head has arrived")
    func largeHeader() async throws {
        // A header timeout far past the waits below: only the size check can close it in time.
        try await LiveServer.with(configure: { $0.http.headerTimeout = .seconds(600) }) { server in
            let socket = try RawSocket(port: server.port)
            // 40 KiB of one header value, never finished: the answer does not wait for the end.
            await socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + String(repeating: "b", count: 40 * 1024))
            let response = try #require(await socket.response())
            #expect(response.status == 431)
            #expect(response.errorCode == "headers_too_large")
            #expect(await socket.waitForClose(timeout: .seconds(30)))
        }
    }

    @Test("the limits are settings")
    func limitsAreSettings() async throws {
        try await LiveServer.with(configure: {
            $0.http.maxRequestLineBytes = 300
            $0.http.maxHeaderCount = 10
            $0.http.maxHeaderBytes = 2048
        }) { server in
            let long = try await DevelopmentIdentityTests.send(server.port, "GET /healthz?" + String(repeating: "a", count: 400) + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(long.status == 414)
            let many = try await DevelopmentIdentityTests.send(server.port, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + (0..<12).map { "X-\($0): 1\r\n" }.joined() + "\r\n")
            #expect(many.status == 431)
            let big = try await DevelopmentIdentityTests.send(server.port, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + String(repeating: "b", count: 2100) + "\r\n\r\n")
            #expect(big.status == 431)
            let fine = try await DevelopmentIdentityTests.send(server.port, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + (0..<9).map { "X-\($0): 1\r\n" }.joined() + "\r\n")
            #expect(fine.status == 200)
        }
    }

    @Test("malformed requests such as Content-Length: -1 get 400 malformed_request and the connection closes")
    func malformedRequests() async throws {
        try await LiveServer.with { server in
            for request in [
                "POST /v1/conversations HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
                "POST /v1/dev/token HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header Name: x\r\n\r\n",
                "NOT HTTP AT ALL\r\n\r\n",
            ] {
                let socket = try RawSocket(port: server.port)
                await socket.send(request)
                let response = try #require(await socket.response(), "\(request.debugDescription)")
                #expect(response.status == 400, "\(request.debugDescription)")
                #expect(response.errorCode == "malformed_request", "\(request.debugDescription)")
                #expect(await socket.waitForClose(timeout: .seconds(30)), "\(request.debugDescription)")
            }
        }
    }

    @Test("a 1 MB request line or header is cut off at once, never held open")
    func megabyteHeadsAreCutOff() async throws {
        // A header timeout far past the waits below: only the size checks can close them in time.
        try await LiveServer.with(configure: { $0.http.headerTimeout = .seconds(600) }) { server in
            for request in [
                "GET /" + String(repeating: "u", count: 1 << 20) + " HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + String(repeating: "h", count: 1 << 20) + "\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: localhost\r\n" + String(repeating: "X-A: 1\r\n", count: 10_000) + "\r\n",
            ] {
                let socket = try RawSocket(port: server.port)
                let started = ContinuousClock.now
                await socket.send(request)
                #expect(await socket.waitForClose(timeout: .seconds(20)))
                #expect(ContinuousClock.now - started < .seconds(20))
                if let response = RawResponse(parsing: socket.received) {
                    #expect([414, 431].contains(response.status))
                }
            }
        }
    }

    @Test("half-open connections beyond the cap on unauthenticated connections do not keep /healthz from answering")
    func unauthenticatedCap() async throws {
        try await LiveServer.with(configure: {
            $0.http.maxUnauthenticatedConnections = 4
            $0.http.headerTimeout = .seconds(60)
        }) { server in
            var held: [RawSocket] = []
            for _ in 0..<30 {
                let socket = try RawSocket(port: server.port)
                await socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
                held.append(socket)
            }
            // The oldest half-open ones make room: at most the cap stays open. Waiting for that
            // first keeps a loaded machine, still admitting the flood, from dropping the probe's
            // own connection as the oldest.
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            var open = held.count
            while open > 4 && ContinuousClock.now < deadline {
                open = 0
                for socket in held where !(await socket.waitForClose(timeout: .zero)) { open += 1 }
                if open > 4 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(open <= 4)
            let started = ContinuousClock.now
            let health = try await DevelopmentIdentityTests.send(server.port, Self.healthz)
            #expect(health.status == 200)
            // Held behind the flood, it would wait out the 60 s header timeout.
            #expect(ContinuousClock.now - started < .seconds(20))
        }
    }

    @Test("authenticated connections do not count against the cap on unauthenticated connections")
    func authenticatedConnectionsDoNotCount() async throws {
        try await LiveServer.with(configure: {
            $0.http.maxUnauthenticatedConnections = 2
            $0.http.headerTimeout = .seconds(60)
            $0.http.idleTimeout = .seconds(600)
        }) { server in
            let token = try await server.token("alice")
            var authenticated: [RawSocket] = []
            for _ in 0..<4 {
                let socket = try RawSocket(port: server.port)
                await socket.send("GET /v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n\r\n")
                #expect(await socket.response()?.status == 200)
                authenticated.append(socket)
            }
            // New unauthenticated connections push out each other, never the authenticated ones.
            var halfOpen: [RawSocket] = []
            for _ in 0..<6 {
                let socket = try RawSocket(port: server.port)
                await socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
                halfOpen.append(socket)
            }
            for socket in authenticated {
                #expect(!(await socket.waitForClose(timeout: .milliseconds(100))))
                await socket.send("GET /v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(token)\r\n\r\n")
                #expect(await socket.wait(timeout: .seconds(30)) { String(decoding: $0.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 200").count == 3 })
            }
            var stillOpen = 0
            for socket in halfOpen where !(await socket.waitForClose(timeout: .milliseconds(50))) { stillOpen += 1 }
            #expect(stillOpen <= 2)
        }
    }

    @Test("graceful shutdown does not wait for half-open or idle keep-alive connections")
    func shutdownClosesWaitingConnections() async throws {
        let held = Mutex<[RawSocket]>([])
        let bodyEnded = Mutex<ContinuousClock.Instant?>(nil)
        try await LiveServer.with(configure: {
            $0.http.headerTimeout = .seconds(60)
            $0.http.idleTimeout = .seconds(60)
        }) { server in
            let halfOpen = try RawSocket(port: server.port)
            await halfOpen.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
            let idle = try RawSocket(port: server.port)
            await idle.send(Self.healthz)
            #expect(await idle.response()?.status == 200)
            held.withLock { $0 = [halfOpen, idle] }
            bodyEnded.withLock { $0 = .now }
        }
        let ended = try #require(bodyEnded.withLock { $0 })
        // Those connections' own timeouts are 60 s: a shutdown that waited for them would take
        // that long. 20 s leaves room for a loaded CI machine (alone it takes well under 1 s).
        #expect(ContinuousClock.now - ended < .seconds(20))
        for socket in held.withLock({ $0 }) {
            #expect(await socket.waitForClose(timeout: .seconds(30)))
        }
    }
}
