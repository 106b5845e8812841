import Foundation
import MedViewServer
import Synchronization
import Testing

/// Development identity is safe by construction (issue 12, item 1): development mode listens on
/// loopback only unless told loudly otherwise, development tokens go only to requests addressed
/// to a loopback name, and browser pages from other origins can neither open a WebSocket nor
/// change anything.
@Suite(.timeLimit(.minutes(2))) struct DevelopmentIdentityTests {
    /// A raw request with exactly these headers (and `Content-Length` for a body).
    static func request(_ method: String, _ path: String, host: String?, headers: [String] = [], body: String? = nil) -> String {
        var lines = ["\(method) \(path) HTTP/1.1"]
        if let host { lines.append("Host: \(host)") }
        lines += headers
        if let body { lines.append("Content-Length: \(body.utf8.count)") }
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + (body ?? "")
    }

    static func send(_ port: Int, _ text: String) async throws -> RawResponse {
        let socket = try RawSocket(port: port)
        await socket.send(text)
        return try #require(await socket.response())
    }

    @Test("development mode refuses to listen on a non-loopback address")
    func refusesNetworkBind() async throws {
        // Were it to start, it would be stopped cleanly, so the failure is this expectation alone.
        try await #require(throws: StartupError.self) {
            try await LiveServer.with(configure: { $0.host = "0.0.0.0" }) { _ in }
        }
        // Refused before the store is opened or the model loaded.
        for host in ["::", "192.0.2.10", "10.0.0.1", "medview.example", "localhost.example"] {
            let configuration = ServerConfiguration(host: host, port: 0, dataDirectory: NSTemporaryDirectory() + "medview-test-" + UUID().uuidString)
            await #expect(throws: StartupError.self, "host \(host)") {
                _ = try await buildApplication(configuration: configuration)
            }
        }
    }

    @Test("--allow-dev-tokens-on-network lets development mode listen on the network, and says so loudly")
    func allowOnNetworkIsLoud() async throws {
        let lines = Mutex<[String]>([])
        try await LiveServer.with(configure: {
            $0.host = "0.0.0.0"
            $0.allowDevTokensOnNetwork = true
        }, announce: { line in lines.withLock { $0.append(line) } }) { server in
            let health = try await Self.send(server.port, Self.request("GET", "/healthz", host: "127.0.0.1:\(server.port)"))
            #expect(health.status == 200)
        }
        #expect(lines.withLock { $0 }.contains { $0.contains("DEVELOPMENT TOKENS ON THE NETWORK") })
    }

    @Test("loopback binds are loopback: 127.0.0.0/8, ::1 and localhost")
    func loopbackBinds() async throws {
        let lines = Mutex<[String]>([])
        try await LiveServer.with(configure: { $0.host = "localhost" }, announce: { line in lines.withLock { $0.append(line) } }) { server in
            let health = try await Self.send(server.port, Self.request("GET", "/healthz", host: "localhost:\(server.port)"))
            #expect(health.status == 200)
        }
        #expect(!lines.withLock { $0 }.contains { $0.contains("DEVELOPMENT TOKENS ON THE NETWORK") })
    }

    @Test("development tokens go only to requests whose Host is a loopback name")
    func devTokenNeedsLoopbackHost() async throws {
        try await LiveServer.with { server in
            let body = #"{"user": "alice"}"#
            for host in ["localhost", "localhost:\(server.port)", "127.0.0.1:\(server.port)", "127.1.2.3", "[::1]:\(server.port)", "LOCALHOST"] {
                let answer = try await Self.send(server.port, Self.request("POST", "/v1/dev/token", host: host, headers: ["Content-Type: application/json"], body: body))
                #expect(answer.status == 200, "Host: \(host)")
            }
            // A DNS-rebinding page: its own name, now pointing at 127.0.0.1, is the Host.
            for host in ["attacker.example:\(server.port)", "attacker.example", "localhost.attacker.example", "127.0.0.1.nip.io", "0.0.0.0"] {
                let answer = try await Self.send(server.port, Self.request("POST", "/v1/dev/token", host: host, headers: ["Content-Type: application/json", "Origin: http://\(host)"], body: body))
                #expect(answer.status == 403, "Host: \(host)")
                #expect(answer.errorCode == "host_not_allowed", "Host: \(host)")
                #expect(answer.header("Content-Type")?.hasPrefix("application/json") == true)
            }
            // No Host at all (HTTP/1.0) cannot prove it is local either.
            let socket = try RawSocket(port: server.port)
            await socket.send("POST /v1/dev/token HTTP/1.0\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let noHost = try #require(await socket.response())
            #expect(noHost.status == 403 || noHost.status == 400)
        }
    }

    @Test("state-changing requests from another origin get a typed 403; same origin, allowed origins and no Origin pass")
    func stateChangingRequestsCheckOrigin() async throws {
        try await LiveServer.with(configure: { $0.allowedOrigins = ["https://app.example.com"] }) { server in
            let token = try await server.token("alice")
            let host = "localhost:\(server.port)"
            func create(origin: String?) async throws -> RawResponse {
                try await Self.send(server.port, Self.request("POST", "/v1/conversations", host: host, headers: ["Authorization: Bearer \(token)"] + (origin.map { ["Origin: \($0)"] } ?? []), body: ""))
            }
            // (The scheme is not compared for the own origin: behind a TLS terminator the server cannot tell.)
            for origin in ["http://attacker.example", "null", "http://localhost:\(server.port + 1)", "http://127.0.0.1:\(server.port)", "http://app.example.com"] {
                let refused = try await create(origin: origin)
                #expect(refused.status == 403, "Origin: \(origin)")
                #expect(refused.errorCode == "origin_not_allowed", "Origin: \(origin)")
            }
            for origin in [nil, "http://localhost:\(server.port)", "HTTP://LOCALHOST:\(server.port)", "https://app.example.com", "https://app.example.com:443"] {
                let created = try await create(origin: origin)
                #expect(created.status == 201 || created.status == 200, "Origin: \(origin ?? "none")")
            }
            // A cross-site form POST to the loopback name itself: the Host is fine, the Origin is not.
            let forged = try await Self.send(server.port, Self.request("POST", "/v1/dev/token", host: host, headers: ["Origin: http://attacker.example", "Content-Type: application/json"], body: #"{"user": "alice"}"#))
            #expect(forged.status == 403)
            #expect(forged.errorCode == "origin_not_allowed")
            // Reading is not state-changing: GET passes the Origin check (and still needs a token).
            let list = try await Self.send(server.port, Self.request("GET", "/v1/conversations", host: host, headers: ["Authorization: Bearer \(token)", "Origin: http://attacker.example"]))
            #expect(list.status == 200)
            // DELETE is state-changing.
            let delete = try await Self.send(server.port, Self.request("DELETE", "/v1/conversations/c1", host: host, headers: ["Authorization: Bearer \(token)", "Origin: http://attacker.example"]))
            #expect(delete.status == 403)
        }
    }

    @Test("a WebSocket upgrade from another origin is refused with a typed 403 before it upgrades; the page's own origin upgrades")
    func webSocketUpgradeChecksOrigin() async throws {
        try await LiveServer.with { server in
            let token = try await server.token("alice")
            let host = "127.0.0.1:\(server.port)"
            func upgrade(origin: String?) async throws -> RawResponse {
                try await Self.send(server.port, Self.request("GET", "/v1/ws", host: host, headers: [
                    "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Protocol: medview.v1, medview.bearer.\(token)",
                ] + (origin.map { ["Origin: \($0)"] } ?? [])))
            }
            let refused = try await upgrade(origin: "http://attacker.example")
            #expect(refused.status == 403)
            #expect(refused.errorCode == "origin_not_allowed")
            #expect(try await upgrade(origin: "http://\(host)").status == 101)
            #expect(try await upgrade(origin: nil).status == 101)
        }
    }

    @Test("the page's Content-Security-Policy lets it connect to its own origin only, not to any ws: or wss: host")
    func contentSecurityPolicyNamesOwnOrigin() async throws {
        try await LiveServer.with { server in
            let host = "localhost:\(server.port)"
            let page = try await Self.send(server.port, Self.request("GET", "/", host: host))
            #expect(page.status == 200)
            let policy = try #require(page.header("Content-Security-Policy"))
            let connect = try #require(policy.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("connect-src") })
            let sources = connect.split(separator: " ").map(String.init)
            #expect(!sources.contains("ws:"))
            #expect(!sources.contains("wss:"))
            #expect(sources.contains("ws://\(host)"))
            #expect(sources.contains("wss://\(host)"))
            #expect(sources.contains("'self'"))
            // A Host that is not an authority never reaches the policy.
            let odd = try await Self.send(server.port, Self.request("GET", "/", host: "evil;script-src *"))
            #expect(odd.header("Content-Security-Policy")?.contains("script-src *") != true)
        }
    }
}
