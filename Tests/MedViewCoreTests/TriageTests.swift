import Logging
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewSafety
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1)), .bundledSafetyData) struct TriageTests {
    func service(triage: ModelTriage) -> ChatService {
        ChatService(
            model: ScriptedModel(configuration: .init(deltaDelay: .milliseconds(2))),
            store: InMemoryConversationStore(),
            configuration: ChatConfiguration(),
            safety: ClinicalSafetyPolicy(detector: .shared, checker: .shared, triage: triage),
            logger: Logger(label: "test")
        )
    }

    func alerts(_ events: [ServerEvent]) -> [SafetyAlert] {
        events.compactMap { if case .safetyAlert(let a) = $0 { a } else { nil } }
    }

    @Test("an emergency the detector missed but the model's triage names is alerted in the same stream, before it ends")
    func triageAlert() async throws {
        let chat = service(triage: ModelTriage(budget: .seconds(900), detector: .shared) { _, _ in "stroke" })
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hello, a quick question about my week.")
        let events = await collect(result.stream)
        let found = alerts(events)
        #expect(found.map(\.category) == ["stroke"])
        #expect(found.first?.actions.contains { $0.href == "tel:911" } == true)
        guard case .streamEnd = events.last else {
            Issue.record("the answer should still end normally")
            return
        }
    }

    @Test("a triage past its budget shows nothing and does not hold the answer beyond the budget")
    func triageTimeout() async throws {
        let chat = service(triage: ModelTriage(budget: .milliseconds(100), detector: .shared) { _, _ in
            try await Task.sleep(for: .seconds(60))
            return "cardiac"
        })
        let started = ContinuousClock.now
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "Hello, a quick question about my week.")
        let events = await collect(result.stream)
        #expect(alerts(events).isEmpty)
        // Far less than the 60 s the classifier would take (a loaded machine slows the answer itself).
        #expect(ContinuousClock.now - started < .seconds(30))
        guard case .streamEnd(let end) = events.last else {
            Issue.record("expected stream.end")
            return
        }
        #expect(end.finishReason == .complete)
    }

    @Test("with the service's shared timer: a check past its budget ends at the budget, and a check that answers disarms its timer")
    func sharedTimerDeadline() async throws {
        let timer = CoarseTimer(tick: .milliseconds(5))
        let deadline: ModelTriage.Deadline = { after, action in
            let id = timer.schedule(at: .now + after, action)
            return { timer.cancel(id) }
        }
        let slow = ModelTriage(budget: .milliseconds(100), detector: .shared, deadline: deadline) { _, _ in
            try await Task.sleep(for: .seconds(60))
            return "cardiac"
        }
        let started = ContinuousClock.now
        #expect(await slow.triage("my chest feels odd", deterministic: nil) == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(30))
        let quick = ModelTriage(budget: .seconds(900), detector: .shared, deadline: deadline) { _, _ in "none" }
        for _ in 0..<20 {
            #expect(await quick.triage("how much water should I drink", deterministic: nil) == .clear)
        }
        // Nothing is left armed for 900 s: each answered check disarmed its own deadline.
        #expect(timer.scheduledCount == 0)
    }

    @Test("when the detector alerts, the model is not asked and its answer cannot withdraw the alert")
    func detectorFirst() async throws {
        let asked = Mutex(0)
        let chat = service(triage: ModelTriage(budget: .milliseconds(500), detector: .shared) { _, _ in
            asked.withLock { $0 += 1 }
            return "none"
        })
        let result = try await chat.send(userId: "alice", conversationId: nil, clientMessageId: "m1", text: "I have crushing chest pain spreading to my jaw and I am sweating")
        let events = await collect(result.stream)
        #expect(alerts(events).map(\.category) == ["cardiac"])
        #expect(asked.withLock { $0 } == 0)
    }
}
