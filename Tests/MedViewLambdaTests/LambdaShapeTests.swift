import AsyncHTTPClient
import Foundation
import HTTPTypes
import Logging
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewServer
import MedViewStandIns
import MedViewTestSupport
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@testable import MedViewLambda

/// The serverless shape end to end: a client that speaks only the project's protocol, through
/// API Gateway (the stand-in), to the function on PostgreSQL (needs `MEDVIEW_TEST_DATABASE_URL`).
@Suite(.enabled(if: LambdaShape.databaseURL != nil, "MEDVIEW_TEST_DATABASE_URL is not set"), .serialized, .timeLimit(.minutes(3)))
struct LambdaShapeTests {
    /// The conversation `medview serve`'s tests use for safety: an emergency, then a medication
    /// and an interacting one in the same conversation.
    static let emergency = "I have crushing chest pain spreading to my jaw and I am sweating"
    static let medication = "I take warfarin every day"
    static let interacting = "Can I take Advil for my back pain?"

    /// Sends the safety conversation on `ws` and returns every event of the three answers.
    static func safetyConversation(_ ws: WSTestClient) async throws -> [[ServerEvent]] {
        var answers: [[ServerEvent]] = []
        ws.send(.chatSend(ChatSend(id: "m1", text: emergency)))
        let a1 = try #require(ack(try await ws.next()))
        answers.append([.ack(a1)] + (try await ws.readStream(a1.streamId!)))
        ws.send(.chatSend(ChatSend(id: "m2", text: medication)))
        let a2 = try #require(ack(try await ws.next()))
        answers.append([.ack(a2)] + (try await ws.readStream(a2.streamId!)))
        ws.send(.chatSend(ChatSend(id: "m3", conversationId: a2.conversationId, text: interacting)))
        let a3 = try #require(ack(try await ws.next()))
        answers.append([.ack(a3)] + (try await ws.readStream(a3.streamId!)))
        return answers
    }

    @Test("the function gives the same answers, emergency alert and interaction warning as medview serve")
    func sameAsTheServer() async throws {
        try await LambdaShape.with { shape in
            let ws = try await shape.connect("alice")
            defer { ws.close() }
            let fromLambda = try await Self.safetyConversation(ws)
            let fromServer = try await Self.withServer(shape.configuration, user: "bob") { ws in try await Self.safetyConversation(ws) }
            // Chunk boundaries depend on timing (a chunk is flushed after a short delay); the
            // text, the alerts, the warnings and the endings may not.
            #expect(fromLambda.map(visibleAnswer) == fromServer.map(visibleAnswer))
            // What the patient relies on, explicitly: the alert right behind stream.start, the warning on the third answer.
            guard case .safetyAlert(let alert) = fromLambda[0][2] else { Issue.record("no emergency alert right after stream.start"); return }
            #expect(alert.category == "cardiac")
            #expect(!fromLambda[1].contains { if case .safetyWarning = $0 { true } else { false } })
            #expect(fromLambda[2].contains { if case .safetyWarning = $0 { true } else { false } })
            #expect(fromLambda.allSatisfy { if case .streamEnd = $0.last { true } else { false } })
            // Stored whole, as the server stores it.
            let stored = try await shape.messages(try #require(ack(fromLambda[2][0])?.conversationId), user: "alice")
            #expect(stored.map(\.status) == [.complete, .complete, .complete, .complete])
            #expect(stored.last?.text == chunks(fromLambda[2]).map(\.text).joined())
        }
    }

    @Test("after a disconnect mid-answer, resume on a new connection gets exactly the missing events, in order, once")
    func resumeAfterDisconnect() async throws {
        try await LambdaShape.with { shape in
            let all = try await shape.scenarios.resumeAfterDisconnect("[[repeat:4]][[delay:10]]")
            guard case .streamEnd(let end) = all.last else { return }
            #expect(end.finishReason == .complete)
            // The invocation whose client left (410) still ran the answer to its end and stored it whole.
            let conversation = try #require(all.compactMap { if case .streamStart(let s) = $0 { s.conversationId } else { nil } }.first)
            let stored = try await shape.messages(conversation, user: "alice")
            #expect(stored.last?.status == .complete)
            #expect(stored.last?.text == chunks(all).map(\.text).joined())
        }
    }

    @Test("a cancel from a second connection reaches the invocation streaming the answer")
    func cancelFromAnotherConnection() async throws {
        try await LambdaShape.with { shape in
            let a = try await shape.connect("alice")
            let b = try await shape.connect("alice")
            defer { a.close(); b.close() }
            a.send(.chatSend(ChatSend(id: "m1", text: "[[repeat:200]][[delay:20]]")))
            let acked = try #require(ack(try await a.next()))
            let streamId = try #require(acked.streamId)
            var events: [ServerEvent] = []
            var cancelled = false
            while true {
                let e = try await a.next(timeout: .seconds(20))
                guard e.streamId == streamId, e.seq != nil else { continue }
                events.append(e)
                if !cancelled, chunks(events).count == 2 {
                    b.send(.streamCancel(StreamCancel(id: "c1", streamId: streamId)))
                    #expect(ack(try await b.next())?.id == "c1")
                    cancelled = true
                }
                if e.isTerminal { break }
            }
            guard case .streamEnd(let end) = events.last else { Issue.record("expected stream.end"); return }
            #expect(end.finishReason == .cancelled)
            #expect(chunks(events).count < 100)
            let stored = try await shape.messages(try #require(acked.conversationId), user: "alice")
            #expect(stored.last?.status == .cancelled)
            #expect(stored.last?.text == chunks(events).map(\.text).joined())
        }
    }

    @Test("an answer still running near the invocation's deadline is stored failed with its text and ends with a retryable shutting_down that a resume replays")
    func deadlineStopsTheAnswerResumably() async throws {
        // A 5 s function timeout less the 2 s margin: the answer (200 pieces, 30 ms apart, so
        // about 6 s) is stopped about 3 s in.
        try await LambdaShape.with(functionTimeout: .seconds(5)) { shape in
            let ws = try await shape.connect("alice")
            defer { ws.close() }
            let started = ContinuousClock.now
            ws.send(.chatSend(ChatSend(id: "m1", text: "[[repeat:200]][[delay:30]]")))
            let acked = try #require(ack(try await ws.next()))
            let streamId = try #require(acked.streamId)
            var events: [ServerEvent] = []
            while true {
                let e = try await ws.next(timeout: .seconds(20))
                guard e.streamId == streamId, e.seq != nil else { continue }
                events.append(e)
                if e.isTerminal { break }
            }
            let elapsed = ContinuousClock.now - started
            guard case .error(let ending) = events.last else { Issue.record("expected a terminal error, got \(String(describing: events.last))"); return }
            #expect(ending.code == .shuttingDown && ending.retryable)
            #expect(elapsed < .seconds(5), "stopped before the function's own timeout")
            #expect(!chunks(events).isEmpty && chunks(events).count < 200)
            let stored = try await shape.messages(try #require(acked.conversationId), user: "alice")
            #expect(stored.last?.status == .failed)
            #expect(stored.last?.text == chunks(events).map(\.text).joined())
            // The stopped answer replays whole, its ending included, on a new connection.
            let again = try await shape.connect("alice")
            defer { again.close() }
            again.send(.streamResume(StreamResume(id: "r1", streamId: streamId, after: 0)))
            #expect(ack(try await again.next())?.id == "r1")
            var replayed: [ServerEvent] = []
            while true {
                let e = try await again.next(timeout: .seconds(20))
                guard e.streamId == streamId, e.seq != nil else { continue }
                replayed.append(e)
                if e.isTerminal { break }
            }
            #expect(replayed.map(\.seq) == events.map(\.seq))
            #expect(chunks(replayed).map(\.text) == chunks(events).map(\.text))
        }
    }

    @Test("a retried chat.send re-attaches to the original stream without a second answer")
    func idempotentRetry() async throws {
        try await LambdaShape.with { shape in try await shape.scenarios.idempotentRetry() }
    }

    @Test("a bad token is refused at the upgrade; a browser's bearer subprotocol is accepted and never echoed")
    func authentication() async throws {
        try await LambdaShape.with { shape in
            let refused = try await WSTestClient.connect(url: shape.standIn.webSocketURL.absoluteString, headers: [.authorization: "Bearer not-a-token"])
            guard case .closed = try await refused.nextItem() else { Issue.record("a bad token opened a socket"); return }
            let expired = try await WSTestClient.connect(url: shape.standIn.webSocketURL.absoluteString, headers: [.authorization: "Bearer \(try await shape.token("alice", lifetime: .seconds(-60)))"])
            guard case .closed = try await expired.nextItem() else { Issue.record("an expired token opened a socket"); return }
            #expect(shape.standIn.connectionIDs.isEmpty)

            let token = try await shape.token("alice")
            let browser = try await WSTestClient.connect(url: shape.standIn.webSocketURL.absoluteString, headers: [.secWebSocketProtocol: "medview.v1, medview.bearer.\(token)"])
            defer { browser.close() }
            browser.send(.ping(Ping(id: "p1")))
            #expect(ack(try await browser.next())?.id == "p1")
            // auth.refresh moves the stored expiry; another user's token is refused.
            let minted = Date().timeIntervalSince1970
            browser.send(.authRefresh(AuthRefresh(id: "r1", token: try await shape.token("alice", lifetime: .seconds(1200)))))
            let refreshed = try #require(ack(try await browser.next()))
            #expect(refreshed.expiresAt.map { $0 >= minted + 1199 } == true)
            browser.send(.authRefresh(AuthRefresh(id: "r2", token: try await shape.token("mallory"))))
            #expect(errorEvent(try await browser.next())?.code == .unauthorized)
        }
    }

    @Test("the per-user connection limit holds across invocations, and a disconnect frees a place")
    func connectionLimit() async throws {
        try await LambdaShape.with(configure: { $0.limits.maxConnectionsPerUser = 2 }) { shape in
            var open: [WSTestClient] = []
            for i in 0..<2 {
                let ws = try await shape.connect("alice")
                ws.send(.ping(Ping(id: "p\(i)")))
                #expect(ack(try await ws.next())?.id == "p\(i)")
                open.append(ws)
            }
            let third = try await shape.connect("alice")
            guard case .closed = try await third.nextItem() else { Issue.record("a third connection opened"); return }
            // Another user is not affected.
            let bob = try await shape.connect("bob")
            bob.send(.ping(Ping(id: "b")))
            #expect(ack(try await bob.next())?.id == "b")
            bob.close()
            open[0].close()
            // $disconnect runs after the close; then a new connection fits.
            var admitted = false
            for attempt in 0..<50 where !admitted {
                let ws = try await shape.connect("alice")
                ws.send(.ping(Ping(id: "again\(attempt)")))
                if case .event(let e) = try await ws.nextItem(timeout: .seconds(2)), ack(e) != nil {
                    admitted = true
                    ws.close()
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(admitted)
            open[1].close()
        }
    }

    @Test("the SSE fallback through the function URL streams the answer and resumes with Last-Event-ID")
    func sseThroughTheFunctionURL() async throws {
        try await LambdaShape.with { shape in
            // The conversation is started over the WebSocket (the function URL serves the SSE endpoints only).
            let ws = try await shape.connect("alice")
            defer { ws.close() }
            ws.send(.chatSend(ChatSend(id: "m1", text: LambdaShapeTests.medication)))
            let first = try #require(ack(try await ws.next()))
            _ = try await ws.readStream(first.streamId!)
            let conversation = try #require(first.conversationId)

            let token = try await shape.token("alice")
            let base = shape.standIn.functionURL.absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            var post = HTTPClientRequest(url: "\(base)/v1/conversations/\(conversation)/messages")
            post.method = .POST
            post.headers.add(name: "Authorization", value: "Bearer \(token)")
            post.headers.add(name: "Accept", value: "text/event-stream")
            post.headers.add(name: "Content-Type", value: "application/json")
            post.body = .bytes(ByteBuffer(string: #"{"id":"s1","text":"\#(LambdaShapeTests.interacting)"}"#))
            let response = try await HTTPClient.shared.execute(post, timeout: .seconds(30))
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
            let streamId = try #require(response.headers.first(name: "x-stream-id"))
            let body = String(buffer: try await Self.within(.seconds(20)) { try await response.body.collect(upTo: 1 << 20) })
            let events = parseSSE(body)
            guard case .ack(let a) = events.first?.event else { Issue.record("expected ack first"); return }
            #expect(a.streamId == streamId)
            #expect(events.contains { if case .safetyWarning = $0.event { true } else { false } })
            guard case .streamEnd = events.last?.event else { Issue.record("expected stream.end last"); return }
            #expect(events.dropFirst().map(\.id) == events.dropFirst().map { $0.event.seq.map(String.init) })

            var resume = HTTPClientRequest(url: "\(base)/v1/streams/\(streamId)")
            resume.headers.add(name: "Authorization", value: "Bearer \(token)")
            resume.headers.add(name: "Accept", value: "text/event-stream")
            resume.headers.add(name: "Last-Event-ID", value: "2")
            let resumed = try await HTTPClient.shared.execute(resume, timeout: .seconds(30))
            #expect(resumed.status.code == 200)
            let rest = parseSSE(String(buffer: try await Self.within(.seconds(20)) { try await resumed.body.collect(upTo: 1 << 20) })).map(\.event)
            #expect(rest == Array(events.dropFirst().map(\.event).dropFirst(2)))

            // Without a token: the server's typed 401.
            var anonymous = HTTPClientRequest(url: "\(base)/v1/streams/\(streamId)")
            anonymous.headers.add(name: "Accept", value: "text/event-stream")
            let refused = try await HTTPClient.shared.execute(anonymous, timeout: .seconds(30))
            #expect(refused.status.code == 401)
            #expect(String(buffer: try await refused.body.collect(upTo: 1 << 16)).contains("\"unauthorized\""))
        }
    }

    /// `body`'s result, or a ``TestTimeout`` after `limit` (a streamed body that never ends fails the test, not the run).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw TestTimeout(description: "no complete body within \(limit)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    // MARK: - medview serve, for comparison

    /// Runs `medview serve`'s application on the same configuration (store, keys, model) and a
    /// WebSocket client as `user` on it.
    static func withServer<T: Sendable>(_ configuration: ServerConfiguration, user: String, _ body: @escaping @Sendable (WSTestClient) async throws -> T) async throws -> T {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = try await buildApplication(configuration: configuration, dependencies: AppDependencies(model: ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1))), logger: logger)) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        let issuer = try #require(app.verifier as? DevTokenIssuer)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let result: Result<T, any Error>
            do {
                guard let port = await iterator.next() else { throw TestTimeout(description: "the server did not start") }
                let ws = try await WSTestClient.connect(url: "ws://127.0.0.1:\(port)/v1/ws", headers: [.authorization: "Bearer \(try await issuer.token(userId: user))"])
                defer { ws.close() }
                result = .success(try await body(ws))
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            return try result.get()
        }
    }
}
