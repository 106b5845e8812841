import Foundation
import HTTPTypes
import JWTKit
import MedViewCore
import MedViewProtocol
import MedViewServer
import NIOCore
import Testing
import MedViewTestSupport

@Suite(.timeLimit(.minutes(2))) struct HardeningWireTests {
    func createConversation(_ server: LiveServer, user: String, body: String? = nil) async throws -> LiveResponse {
        try await server.request("/v1/conversations", .post, user: user, headers: [.contentType: "application/json"], body: body)
    }

    func errorCode(_ r: LiveResponse) -> String? { (json(r)["error"] as? [String: Any])?["code"] as? String }

    @Test("stream.resume with a fraction or an out-of-range after answers invalid_command with the command id, not malformed_json")
    func resumeAfterMustBeAWholeNumber() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            for (id, after) in [("r1", "1.5"), ("r2", "1e30"), ("r3", "99999999999999999999"), ("r4", "-1")] {
                ws.sendText(#"{"type":"stream.resume","id":"\#(id)","streamId":"s_x","after":\#(after)}"#)
                let error = try #require(errorEvent(try await ws.next()))
                #expect(error.code == .invalidCommand, "after \(after)")
                #expect(error.id == id)
            }
        }
    }

    @Test("a message with U+0000 or another control character is refused as invalid_text; one of only zero-width characters as empty_message; on WebSocket and SSE")
    func textRules() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.sendText(#"{"type":"chat.send","id":"n1","text":"before\u0000after"}"#)
            var error = try #require(errorEvent(try await ws.next()))
            #expect(error.code.rawValue == "invalid_text")
            #expect(error.id == "n1")
            ws.sendText(#"{"type":"chat.send","id":"z1","text":"\u200b\u200c\u200d\ufeff"}"#)
            error = try #require(errorEvent(try await ws.next()))
            #expect(error.code == .emptyMessage)
            #expect(error.id == "z1")
            // Nothing was stored for either.
            let listed = json(try await server.request("/v1/conversations", user: "alice"))["conversations"] as? [Any] ?? []
            #expect(listed.isEmpty)

            let created = try await createConversation(server, user: "alice")
            let conversation = try #require(json(created)["id"] as? String)
            let sse = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", headers: [.accept: "text/event-stream"], body: #"{"id":"s1","text":"a\u0000b"}"#)
            #expect(sse.status == .badRequest)
            #expect(errorCode(sse) == "invalid_text")
        }
    }

    @Test("a conversation title with U+0000 is refused as invalid_text; one of only invisible characters is no title")
    func titles() async throws {
        try await LiveServer.with { server in
            let refused = try await createConversation(server, user: "alice", body: #"{"title":"Sleep\u0000hidden"}"#)
            #expect(refused.status == .badRequest)
            #expect(errorCode(refused) == "invalid_text")
            let invisible = try await createConversation(server, user: "alice", body: #"{"title":"\u200b\u2060 "}"#)
            #expect(invisible.status == .created)
            #expect(json(invisible)["title"] as? String == "New conversation")
            let listed = json(try await server.request("/v1/conversations", user: "alice"))["conversations"] as? [[String: Any]] ?? []
            #expect(listed.map { $0["title"] as? String } == ["New conversation"])
        }
    }

    @Test("a user over the message rate gets rate_limited with retryAfter: on WebSocket as an error event, on SSE as 429 with Retry-After; other users are not affected")
    func rateLimited() async throws {
        try await LiveServer.with(configure: { $0.chat.usageLimits = UsageLimits(messagesPerMinute: 1, burst: 2) }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            for id in ["1", "2"] {
                ws.send(.chatSend(ChatSend(id: id, text: "Hello [[delay:0]]")))
                let a = try #require(ack(try await ws.next()))
                _ = try await ws.readStream(try #require(a.streamId))
            }
            ws.send(.chatSend(ChatSend(id: "3", text: "Hello again")))
            let error = try #require(errorEvent(try await ws.next()))
            #expect(error.code == .rateLimited)
            #expect(error.id == "3")
            #expect(error.retryable)
            let wait = try #require(error.retryAfter)
            #expect((1...60).contains(wait))
            #expect(error.seq == nil)

            let conversation = try #require(json(try await createConversation(server, user: "alice"))["id"] as? String)
            let sse = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", headers: [.accept: "text/event-stream"], body: #"{"id":"4","text":"Hello"}"#)
            #expect(sse.status == .tooManyRequests)
            #expect(errorCode(sse) == "rate_limited")
            let retryAfter = try #require(sse.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...60).contains(retryAfter))
            #expect((json(sse)["error"] as? [String: Any])?["retryAfter"] as? Int == retryAfter)

            let bob = try await server.connect("bob")
            defer { bob.close() }
            bob.send(.chatSend(ChatSend(id: "1", text: "Hello [[delay:0]]")))
            #expect(ack(try await bob.next()) != nil)
        }
    }

    @Test("with the defaults, one user's flood of messages is cut off after the burst")
    func defaultRateLimit() async throws {
        let configuration = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [:])
        let burst = try #require(configuration.chat.usageLimits?.burst)
        try await LiveServer.with(configure: { $0.chat = configuration.chat }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            var refused: ErrorEvent?
            for i in 0..<(burst + 10) where refused == nil {
                ws.send(.chatSend(ChatSend(id: "flood-\(i)", text: "Hi [[delay:0]] [[say:ok]]")))
                let event = try await ws.next()
                if let a = ack(event) {
                    _ = try await ws.readStream(try #require(a.streamId))
                } else {
                    refused = errorEvent(event)
                    // At least the burst goes through; a slow machine may earn a refill or two.
                    #expect(i >= burst)
                }
            }
            #expect(refused?.code == .rateLimited)
        }
    }

    @Test("finished answers' replay logs leave memory oldest first past the byte budget; resume then comes from the store")
    func replayBudget() async throws {
        try await LiveServer.with(configure: { $0.chat.replayMemoryBytes = 4_000 }) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            var streams: [(String, [ServerEvent])] = []
            for i in 0..<3 {
                ws.send(.chatSend(ChatSend(id: "b\(i)", text: "Question \(i) [[delay:0]] [[repeat:6]]")))
                let id = try #require(ack(try await ws.next())?.streamId)
                streams.append((id, try await ws.readStream(id)))
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(server.chat.registry.retainedReplayBytes <= 4_000)
            ws.send(.streamResume(StreamResume(id: "r0", streamId: streams[0].0, after: 0)))
            #expect(ack(try await ws.next()) != nil)
            #expect(try await ws.readStream(streams[0].0) == streams[0].1)
        }
    }
}

@Suite struct KeyFileTests {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "medview-key-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("the data directory is created 0700 and the development key 0600")
    func createdPrivate() async throws {
        let parent = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let directory = parent + "/data"
        let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
        let dirMode = try (FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? NSNumber)?.intValue
        let keyMode = try (FileManager.default.attributesOfItem(atPath: issuer.keyPath)[.posixPermissions] as? NSNumber)?.intValue
        #expect(dirMode.map { $0 & 0o777 } == 0o700)
        #expect(keyMode.map { $0 & 0o777 } == 0o600)
    }

    @Test("the server refuses to start on a development key other users can read, and says how to fix it")
    func refusesReadableKey() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: issuer.keyPath)
        do {
            _ = try await DevTokenIssuer.load(dataDirectory: directory)
            Issue.record("a world-readable key must be refused")
        } catch {
            #expect("\(error)".contains("chmod 600"))
        }
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory, model: "scripted")
        configuration.limits.shutdownGracePeriod = .seconds(1)
        do {
            let app = try await buildApplication(configuration: configuration)
            try await app.chat.store.close()
            Issue.record("the server must refuse to start")
        } catch {
            #expect("\(error)".contains("chmod 600"))
        }
    }
}

@Suite struct TokenTimeTests {
    struct DevClaims: JWTPayload {
        var iss = DevTokenIssuer.issuer
        var sub = "alice"
        var aud = [DevTokenIssuer.audience]
        var exp = Date().addingTimeInterval(600)
        var iat = Date()
        var nbf: Date?

        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    func devToken(_ claims: DevClaims, issuer: DevTokenIssuer) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: try ES256PrivateKey(pem: String(contentsOfFile: issuer.keyPath, encoding: .utf8)), kid: JWKIdentifier(string: "dev-1"))
        return try await keys.sign(claims, kid: JWKIdentifier(string: "dev-1"))
    }

    @Test("development tokens with nbf in the future or iat far in the future are refused; a small clock skew is allowed")
    func devIssuer() async throws {
        let directory = NSTemporaryDirectory() + "medview-jwt-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let issuer = try await DevTokenIssuer.load(dataDirectory: directory)
        _ = try await issuer.verify(try await devToken(DevClaims(), issuer: issuer))
        _ = try await issuer.verify(try await devToken(DevClaims(iat: Date().addingTimeInterval(20), nbf: Date().addingTimeInterval(20)), issuer: issuer))
        for claims in [DevClaims(nbf: Date().addingTimeInterval(3000)), DevClaims(iat: Date().addingTimeInterval(3000)), DevClaims(exp: Date().addingTimeInterval(7200), iat: Date().addingTimeInterval(3600))] {
            await #expect(throws: AuthError.invalid) {
                _ = try await issuer.verify(try await devToken(claims, issuer: issuer))
            }
        }
    }

    struct CognitoClaims: JWTPayload {
        var iss = CognitoTokenVerifierTests.issuer
        var sub = "user-1"
        var exp = Date().addingTimeInterval(600)
        var iat = Date()
        var nbf: Date?
        var token_use = "access"
        var client_id = CognitoTokenVerifierTests.clientId

        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    @Test("Cognito tokens with nbf in the future or iat far in the future are refused; a small clock skew is allowed")
    func cognito() async throws {
        let pool = CognitoTokenVerifierTests.Pool()
        pool.publish([("a", CognitoTokenVerifierTests.keyA)])
        let verifier = try CognitoTokenVerifierTests.verifier(pool)
        func sign(_ claims: CognitoClaims) async throws -> String {
            let keys = JWTKeyCollection()
            await keys.add(rsa: try Insecure.RSA.PrivateKey(pem: CognitoTokenVerifierTests.keyA), digestAlgorithm: .sha256, kid: JWKIdentifier(string: "a"))
            return try await keys.sign(claims, kid: JWKIdentifier(string: "a"))
        }
        _ = try await verifier.verify(try await sign(CognitoClaims()))
        _ = try await verifier.verify(try await sign(CognitoClaims(iat: Date().addingTimeInterval(20), nbf: Date().addingTimeInterval(20))))
        #expect(await CognitoTokenVerifierTests.refusal(verifier, try await sign(CognitoClaims(nbf: Date().addingTimeInterval(3000)))) == .invalid)
        #expect(await CognitoTokenVerifierTests.refusal(verifier, try await sign(CognitoClaims(iat: Date().addingTimeInterval(3000)))) == .invalid)
    }
}
