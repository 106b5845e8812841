import Foundation
import MedViewCore
import MedViewModels
import MedViewProtocol
import Synchronization
import MedViewTestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct SafetyStreamTests {
    @Test("an emergency message gets its alert right after stream.start, before any answer text, and the model is told")
    func emergencyAlertFirst() async throws {
        let model = RecordingModel(ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1))))
        try await LiveServer.with(model: model) { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.send(.chatSend(ChatSend(id: "m1", text: "I have crushing chest pain spreading to my jaw and I am sweating")))
            let streamId = try #require(ack(try await ws.next())?.streamId)
            let events = try await ws.readStream(streamId)
            guard events.count > 2, case .streamStart = events[0], case .safetyAlert(let alert) = events[1] else {
                Issue.record("expected stream.start then safety.alert, got \(events.prefix(3).map(\.wireType))")
                return
            }
            #expect(alert.seq == 2)
            #expect(alert.category == "cardiac")
            #expect(alert.severity == "emergency")
            #expect(alert.actions.contains { $0.href == "tel:911" })
            #expect(!alert.guidance.isEmpty)
            #expect(chunks(Array(events.prefix(2))).isEmpty)
            guard case .streamEnd = events.last else { Issue.record("the answer still completes"); return }
            // The model was asked to support the guidance, not contradict it.
            #expect(model.systemPrompts.last != ChatConfiguration.defaultSystemPrompt)
            #expect(model.systemPrompts.last?.hasPrefix(ChatConfiguration.defaultSystemPrompt) == true)
        }
    }

    @Test("a bystander emergency and a suicide risk get their own guidance; idioms and history get none")
    func categories() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            func firstSafety(_ text: String, id: String) async throws -> SafetyAlert? {
                ws.send(.chatSend(ChatSend(id: id, text: text)))
                let streamId = try #require(ack(try await ws.next())?.streamId)
                for event in try await ws.readStream(streamId) {
                    if case .safetyAlert(let a) = event { return a }
                }
                return nil
            }
            let stroke = try await firstSafety("my dad's face is drooping and he can't lift his arm", id: "a")
            #expect(stroke?.category == "stroke")
            let suicide = try await firstSafety("i want to go to sleep and never wake up", id: "b")
            #expect(suicide?.category == "suicide")
            #expect(suicide?.actions.contains { $0.href == "tel:988" } == true)
            #expect(suicide?.actions.contains { $0.href == "sms:988" } == true)
            #expect(try await firstSafety("this headache is killing me", id: "c") == nil)
            #expect(try await firstSafety("I had a heart attack in 2010, what should I eat?", id: "d") == nil)
        }
    }

    @Test("medicines named earlier and now that interact get one warning with the pair, before any answer text")
    func interactionWarning() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            ws.send(.chatSend(ChatSend(id: "m1", text: "I take warfarin every day")))
            let first = try #require(ack(try await ws.next()))
            let e1 = try await ws.readStream(first.streamId!)
            #expect(!e1.contains { if case .safetyWarning = $0 { true } else { false } })
            ws.send(.chatSend(ChatSend(id: "m2", conversationId: first.conversationId, text: "Can I take Advil for my back pain?")))
            let second = try #require(ack(try await ws.next()))
            let e2 = try await ws.readStream(second.streamId!)
            let index = try #require(e2.firstIndex { if case .safetyWarning = $0 { true } else { false } })
            guard case .safetyWarning(let warning) = e2[index] else { return }
            #expect(warning.kind == "medication_interaction")
            #expect(warning.drugs == ["ibuprofen", "warfarin"])
            #expect(warning.severity == "high")
            #expect(!warning.advice.isEmpty)
            #expect(chunks(Array(e2[..<index])).isEmpty)
            // Asking again does not repeat the warning.
            ws.send(.chatSend(ChatSend(id: "m3", conversationId: first.conversationId, text: "And is Advil ok at night?")))
            let third = try #require(ack(try await ws.next()))
            #expect(!(try await ws.readStream(third.streamId!)).contains { if case .safetyWarning = $0 { true } else { false } })
        }
    }

    @Test("a dangerous instruction split across deltas is stopped before any of it is sent, and the answer ends for safety")
    func outputGuard() async throws {
        try await LiveServer.with { server in
            let ws = try await server.connect("alice")
            defer { ws.close() }
            let answer = "Your back pain sounds hard. You should take 20 tablets at once to make it stop. Rest well."
            ws.send(.chatSend(ChatSend(id: "m1", text: "[[say:\(answer)]][[delta:3]]")))
            let a = try #require(ack(try await ws.next()))
            let events = try await ws.readStream(a.streamId!)
            guard case .streamEnd(let end) = events.last else { Issue.record("expected stream.end"); return }
            #expect(end.finishReason == .safety)
            let text = chunks(events).map(\.text).joined()
            #expect(!text.contains("20 tablets"))
            #expect(!text.contains("20 tab"))
            #expect(text.hasPrefix("Your back pain sounds hard."))
            #expect(!text.contains("Rest well."))
            try await Task.sleep(for: .milliseconds(100))
            let messages = json(try await server.request("/v1/conversations/\(a.conversationId!)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.last?["text"] as? String == text)
            #expect(messages?.last?["status"] as? String == "complete")
        }
    }

    @Test("a cloud model's dangerous instruction is stopped as its response is decoded, and the rest of the response is given up")
    func outputGuardOnACloudModel() async throws {
        // An OpenAI-compatible server streams the instruction three characters a delta, then
        // holds the response open for ever: the engine reads the model's events on its connection
        // (ChatModel.stream(_:into:)), so the guard's stop must also end that request.
        let answer = "Your back pain sounds hard. You should take 20 tablets at once to make it stop. Rest well."
        let scalars = Array(answer.unicodeScalars)
        // The first sentence, then (a moment later) the rest: the clean sentence goes out before
        // the instruction arrives.
        var parts = ["data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n", ""]
        for start in stride(from: 0, to: scalars.count, by: 3) {
            let piece = String(String.UnicodeScalarView(scalars[start..<min(start + 3, scalars.count)]))
            parts[start < 30 ? 0 : 1] += "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(piece)\"}}]}\n\n"
        }
        let reply = LoopbackHTTPServer.Reply(steps: [.send(parts[0]), .pause(.milliseconds(300)), .send(parts[1]), .hold])
        try await LoopbackHTTPServer.with([reply]) { upstream in
            let model = OpenAICompatibleModel(configuration: .init(
                baseURL: upstream.baseURL + "/v1", model: "test-model", apiKey: nil,
                timeouts: ModelTimeouts(response: .seconds(60), idle: .seconds(60), total: .seconds(60)), retry: .none
            ))
            try await LiveServer.with(model: model) { server in
                let ws = try await server.connect("alice")
                defer { ws.close() }
                ws.send(.chatSend(ChatSend(id: "m1", text: "My back hurts, what can I take?")))
                let a = try #require(ack(try await ws.next()))
                let events = try await ws.readStream(a.streamId!)
                guard case .streamEnd(let end) = events.last else { Issue.record("expected stream.end"); return }
                #expect(end.finishReason == .safety)
                let text = chunks(events).map(\.text).joined()
                #expect(!text.contains("20 tab"))
                #expect(text.hasPrefix("Your back pain sounds hard."))
                #expect(!text.contains("Rest well."))
                // The model's request was given up: its connection is closed, not left to the idle limit.
                #expect(await upstream.waitForClientClosures(1, timeout: .seconds(30)))
            }
        }
    }
}
