import Foundation
import MedViewClient
import MedViewModels
import MedViewProtocol
import Synchronization
import Testing

/// The library against a live server through a fault-injecting proxy: what an app relies on when
/// the network misbehaves.
@Suite(.timeLimit(.minutes(2)))
struct ReconnectionTests {
    /// Everything an answer delivered, and the client's counters at the end.
    struct Recorded: Sendable {
        var events: [AnswerEvent]
        var text: String { events.compactMap { if case .text(let t) = $0 { t } else { nil } }.joined() }
        var starts: Int { events.filter { if case .started = $0 { true } else { false } }.count }
        var terminal: [AnswerEvent] { events.filter(\.isTerminal) }
        var end: AnswerEnd? { events.compactMap { if case .ended(let e) = $0 { e } else { nil } }.first }
        var conversationId: String? { events.compactMap { if case .started(let s) = $0 { s.conversationId } else { nil } }.first }
    }

    @Test("A connection cut mid-answer: the answer arrives complete and exactly once")
    func cutMidAnswer() async throws {
        try await withProxiedServer { server, proxy, _ in
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "cut"))
            await client.connect()
            let answer = await client.send("Jet lag? [[delay:20]] [[repeat:2]]")
            var events: [AnswerEvent] = []
            var texts = 0
            for await event in answer {
                events.append(event)
                if case .text = event {
                    texts += 1
                    if texts == 3 { proxy.cutAll() }
                }
            }
            let recorded = Recorded(events: events)
            let stats = await client.statistics
            let conversationId = try #require(recorded.conversationId)
            let stored = try await client.messages(in: conversationId)
            await client.close()

            #expect(recorded.starts == 1)
            #expect(recorded.terminal.count == 1)
            #expect(recorded.end?.finishReason == .complete)
            #expect(recorded.end?.text == recorded.text)
            // Exactly the server's stored answer: nothing missing, nothing twice.
            #expect(stored.count == 2)
            #expect(stored.last?.text == recorded.text)
            #expect(stored.last?.status == "complete")
            #expect(stats.webSocketConnections >= 2, "the client reconnected")
            #expect(stats.resumes >= 1, "and resumed the answer")
        }
    }

    @Test("WebSocket refused: the client falls back to SSE and the answer streams there")
    func webSocketRefused() async throws {
        try await withProxiedServer { server, proxy, _ in
            proxy.setMode(.refuseWebSocket)
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "sse"))
            let states = await client.connectionStates()
            await client.connect()
            let answer = await client.send("How can I sleep better?")
            var events: [AnswerEvent] = []
            for await event in answer { events.append(event) }
            let recorded = Recorded(events: events)
            let stats = await client.statistics
            let conversationId = try #require(recorded.conversationId)
            let stored = try await client.messages(in: conversationId)
            await client.close()
            var seen: [ConnectionState] = []
            for await state in states { seen.append(state) }

            #expect(recorded.end?.finishReason == .complete)
            #expect(recorded.starts == 1)
            #expect(stored.last?.text == recorded.text)
            #expect(!recorded.text.isEmpty)
            #expect(seen.contains(.connected(.serverSentEvents)))
            #expect(!seen.contains(.connected(.webSocket)))
            #expect(stats.fallbacks == 1)
            #expect(stats.webSocketConnections == 0)
            #expect(proxy.webSocketUpgradesRefused >= 2)
        }
    }

    @Test("SSE fallback: a response cut mid-answer is resumed with Last-Event-ID, exactly once")
    func eventStreamCutMidAnswer() async throws {
        try await withProxiedServer { server, proxy, _ in
            proxy.setMode(.refuseWebSocket)
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "sse-cut"))
            await client.connect()
            let answer = await client.send("Jet lag? [[delay:20]] [[repeat:2]]")
            var events: [AnswerEvent] = []
            var texts = 0
            for await event in answer {
                events.append(event)
                if case .text = event {
                    texts += 1
                    if texts == 3 { proxy.cutAll() }
                }
            }
            let recorded = Recorded(events: events)
            let stats = await client.statistics
            let conversationId = try #require(recorded.conversationId)
            let stored = try await client.messages(in: conversationId)
            await client.close()
            #expect(recorded.starts == 1)
            #expect(recorded.end?.finishReason == .complete)
            #expect(stored.last?.text == recorded.text)
            #expect(stats.resumes >= 1)
        }
    }

    @Test("Messages sent while the server is down are delivered once, in order, after it returns")
    func queuedWhileServerDown() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try await TestServer.start(dataDirectory: directory)
        let proxy = try FaultProxy(upstreamPort: first.port)
        defer { proxy.stop() }
        let outboxFile = URL(fileURLWithPath: directory + "-outbox.json")
        defer { try? FileManager.default.removeItem(at: outboxFile) }
        var configuration = testConfiguration(port: proxy.port)
        configuration.outboxFile = outboxFile
        let tokens = first.tokenProvider(user: "offline")
        let client = MedViewClient(configuration: configuration, tokenProvider: tokens)
        await client.connect()
        try await eventually { await client.connectionState == .connected(.webSocket) }

        await first.stop()
        try await eventually { await client.connectionState == .offline }
        let target = ConversationTarget.newConversation()
        let texts = ["First question [[delay:0]]", "Second question [[delay:0]]", "Third question [[delay:0]]"]
        var answers: [Answer] = []
        for text in texts { answers.append(await client.send(text, to: target)) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(await client.queuedMessageIds == answers.map(\.messageId))
        let saved = try String(contentsOf: outboxFile, encoding: .utf8)
        #expect(saved.contains("Second question"), "the queue is in the app's file while offline")

        let second = try await TestServer.start(dataDirectory: directory)
        proxy.setUpstream(port: second.port)
        var outcomes: [AnswerOutcome] = []
        for answer in answers { outcomes.append(await answer.outcome()) }
        var conversationIds: Set<String> = []
        let conversations = try await client.conversations()
        for conversation in conversations { conversationIds.insert(conversation.id) }
        let stored = try await client.messages(in: try #require(conversations.first?.id))
        let queued = await client.queuedMessageIds
        await client.close()
        await second.stop()

        for outcome in outcomes {
            guard case .ended(let end) = outcome else {
                Issue.record("an answer failed: \(outcome)")
                continue
            }
            #expect(end.finishReason == .complete)
        }
        #expect(conversationIds.count == 1, "the three messages went into one new conversation")
        #expect(stored.filter { $0.role == "user" }.map(\.text) == texts, "once each, in order")
        #expect(stored.filter { $0.role == "assistant" }.allSatisfy { $0.status == "complete" })
        #expect(queued.isEmpty)
        let after = (try? String(contentsOf: outboxFile, encoding: .utf8)) ?? ""
        #expect(!after.contains("question"), "acknowledged messages leave the file")
    }

    @Test("From SSE fallback the client returns to the WebSocket once it works again")
    func backToWebSocket() async throws {
        try await withProxiedServer { server, proxy, _ in
            proxy.setMode(.refuseWebSocket)
            var configuration = testConfiguration(port: proxy.port)
            configuration.webSocketRetryInterval = .milliseconds(500)
            let client = MedViewClient(configuration: configuration, tokenProvider: server.tokenProvider(user: "back"))
            await client.connect()
            try await eventually { await client.connectionState == .connected(.serverSentEvents) }
            proxy.setMode(.pass)
            try await eventually { await client.connectionState == .connected(.webSocket) }
            let outcome = await client.send("Back on the socket? [[delay:0]]").outcome()
            let stats = await client.statistics
            await client.close()
            guard case .ended(let end) = outcome else {
                Issue.record("the answer failed: \(outcome)")
                return
            }
            #expect(end.finishReason == .complete)
            #expect(stats.fallbacks == 1)
            #expect(stats.webSocketConnections == 1)
        }
    }

    @Test("A socket that keeps dropping (HTTP still fine) sends the client to SSE")
    func keepsDropping() async throws {
        try await withProxiedServer { server, proxy, _ in
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "drops"))
            await client.connect()
            for socket in 1...3 {
                // Counted by connections, not states: a reconnect can be quicker than any poll.
                try await eventually {
                    let connections = await client.statistics.webSocketConnections
                    let state = await client.connectionState
                    return connections == socket && state == .connected(.webSocket)
                }
                proxy.cutAll()
            }
            try await eventually { await client.connectionState == .connected(.serverSentEvents) }
            let outcome = await client.send("Over SSE now? [[delay:0]]").outcome()
            let stats = await client.statistics
            await client.close()
            guard case .ended(let end) = outcome else {
                Issue.record("the answer failed: \(outcome)")
                return
            }
            #expect(end.finishReason == .complete)
            #expect(stats.webSocketConnections == 3)
            #expect(stats.fallbacks == 1)
        }
    }

    @Test("The outbox file: messages queued before the app quit are sent by the next client, once")
    func outboxFileSurvivesRestart() async throws {
        try await withProxiedServer { server, proxy, directory in
            let file = URL(fileURLWithPath: directory + "-restart-outbox.json")
            defer { try? FileManager.default.removeItem(at: file) }
            var configuration = testConfiguration(port: proxy.port)
            configuration.outboxFile = file
            proxy.setMode(.refuseAll)
            let before = MedViewClient(configuration: configuration, tokenProvider: server.tokenProvider(user: "restart"))
            await before.connect()
            let queued = await before.send("Written offline [[delay:0]]").messageId
            await before.close()

            proxy.setMode(.pass)
            let after = MedViewClient(configuration: configuration, tokenProvider: server.tokenProvider(user: "restart"))
            #expect(await after.queuedMessageIds == [queued])
            let answer = try #require(await after.answer(forMessageId: queued))
            await after.connect()
            let outcome = await answer.outcome()
            let conversations = try await after.conversations()
            let stored = try await after.messages(in: try #require(conversations.first?.id))
            await after.close()
            guard case .ended(let end) = outcome else {
                Issue.record("the answer failed: \(outcome)")
                return
            }
            #expect(end.finishReason == .complete)
            #expect(conversations.count == 1)
            #expect(stored.map(\.role) == ["user", "assistant"])
        }
    }

    @Test("A token the server keeps refusing: the client stops with unauthorized instead of retrying forever")
    func refusedToken() async throws {
        try await withProxiedServer { _, proxy, _ in
            let calls = Counter()
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port)) { _ in
                calls.increment()
                return AccessToken("not.a.token", expiresAt: nil)
            }
            await client.connect()
            try await eventually { await client.connectionState == .stopped(.unauthorized) }
            await client.close()
            #expect(calls.count >= 3, "a fresh token was asked for after each refusal")
        }
    }

    @Test("Idle logoff (close 4408): the client stops and does not reconnect by itself")
    func idleLogoff() async throws {
        try await withProxiedServer(configure: { $0.limits.idleTimeout = .seconds(1); $0.limits.keepAliveInterval = .seconds(1) }) { server, proxy, _ in
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "idle"))
            await client.connect()
            try await eventually { await client.connectionState == .stopped(.idleTimeout) }
            let stats = await client.statistics
            await client.close()
            #expect(stats.webSocketConnections == 1)
        }
    }

    @Test("A second device follows an answer already streaming and gets all of it")
    func followAnswerInProgress() async throws {
        try await withProxiedServer { server, proxy, _ in
            let phone = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "follow"))
            let laptop = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "follow"))
            await phone.connect()
            await laptop.connect()
            var streamId: String?
            var phoneEvents: [AnswerEvent] = []
            let answer = await phone.send("Jet lag? [[delay:20]]")
            for await event in answer {
                phoneEvents.append(event)
                if case .started(let start) = event { streamId = start.streamId }
                if case .text = event, phoneEvents.count == 3 { break }
            }
            let followed = await laptop.follow(streamId: try #require(streamId))
            let outcome = await followed.outcome()
            let phoneOutcome = await answer.outcome()
            await phone.close()
            await laptop.close()
            #expect(outcome == phoneOutcome)
            #expect(!outcome.text.isEmpty)
        }
    }

    @Test("The token is renewed on the open socket and the socket outlives the first token")
    func tokenRenewedOnOpenSocket() async throws {
        try await withProxiedServer { server, proxy, _ in
            let calls = Counter()
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "renew", lifetime: .seconds(24), calls: calls))
            let states = await client.connectionStates()
            await client.connect()
            try await eventually { await client.connectionState == .connected(.webSocket) }
            // Past the first token's expiry (24 s; renewed 6 s before, which leaves a loaded machine
            // time to fetch and send the new one) and the server's once-a-second check.
            try await Task.sleep(for: .seconds(26))
            let outcome = await client.send("Still there? [[delay:0]]").outcome()
            let stats = await client.statistics
            await client.close()
            var seen: [ConnectionState] = []
            for await state in states { seen.append(state) }

            guard case .ended(let end) = outcome else {
                Issue.record("the answer failed: \(outcome)")
                return
            }
            #expect(end.finishReason == .complete)
            #expect(stats.tokenRefreshes >= 1)
            #expect(calls.count >= 2)
            #expect(stats.webSocketConnections == 1, "one socket all along")
            #expect(!seen.contains(.reconnecting))
        }
    }

    @Test("Cancel stops the answer; it ends as cancelled with the text sent so far")
    func cancel() async throws {
        try await withProxiedServer { server, proxy, _ in
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "cancel"))
            await client.connect()
            let answer = await client.send("Tell me more [[delay:100]] [[repeat:3]]")
            var events: [AnswerEvent] = []
            for await event in answer {
                events.append(event)
                if case .text = event, events.filter({ if case .text = $0 { true } else { false } }).count == 1 {
                    await client.cancel(answer)
                }
            }
            let recorded = Recorded(events: events)
            let conversationId = try #require(recorded.conversationId)
            let stored = try await client.messages(in: conversationId)
            await client.close()
            #expect(recorded.end?.finishReason == .cancelled)
            #expect(stored.last?.status == "cancelled")
            #expect(stored.last?.text == recorded.text)
        }
    }

    @Test("Cancel before the message was sent takes it out of the queue")
    func cancelQueued() async throws {
        try await withProxiedServer { server, proxy, _ in
            proxy.setMode(.refuseAll)
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "cancel-queued"))
            await client.connect()
            let answer = await client.send("Never mind")
            await client.cancel(answer)
            let outcome = await answer.outcome()
            #expect(await client.queuedMessageIds.isEmpty)
            await client.close()
            guard case .ended(let end) = outcome else {
                Issue.record("expected a cancelled end")
                return
            }
            #expect(end.finishReason == .cancelled)
        }
    }

    @Test("An emergency message: the alert comes before any answer text")
    func emergencyAlertFirst() async throws {
        try await withProxiedServer { server, proxy, _ in
            let client = MedViewClient(configuration: testConfiguration(port: proxy.port), tokenProvider: server.tokenProvider(user: "alert"))
            await client.connect()
            var events: [AnswerEvent] = []
            for await event in await client.send("I have crushing chest pain going down my left arm and I'm sweating") { events.append(event) }
            await client.close()
            let alert = events.firstIndex { if case .safetyAlert = $0 { true } else { false } }
            let text = events.firstIndex { if case .text = $0 { true } else { false } }
            let alertIndex = try #require(alert)
            #expect(alertIndex < (text ?? Int.max))
        }
    }
}
