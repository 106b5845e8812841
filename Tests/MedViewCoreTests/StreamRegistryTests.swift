import Logging
@testable import MedViewCore
import Testing

@Suite(.timeLimit(.minutes(1))) struct StreamRegistryTests {
    func registry(limit: Int = 2, retention: Duration = .seconds(60)) -> StreamRegistry {
        StreamRegistry(maxActiveStreamsPerUser: limit, retention: retention, logger: Logger(label: "test"))
    }

    func reserve(_ r: StreamRegistry, user: String = "alice", id: String) throws(ChatError) -> StreamRegistry.Entry {
        switch try r.reserve(userId: user, clientMessageId: id, conversationId: "c1", streamId: "s-" + id, textDigest: "d") {
        case .reserved(let entry): entry
        case .existing(let entry): entry
        }
    }

    /// Ends a reservation as an answer does: slot first, then the reservation.
    func finish(_ r: StreamRegistry, _ entry: StreamRegistry.Entry) {
        r.releaseSlot(entry)
        r.release(entry, evict: false)
    }

    @Test("a user gets at most the configured number of streams at once; a finished one frees its slot; other users are not affected")
    func perUserLimit() throws {
        let r = registry(limit: 2)
        let first = try reserve(r, id: "1")
        _ = try reserve(r, id: "2")
        #expect(throws: ChatError.tooManyStreams(limit: 2)) { _ = try reserve(r, id: "3") }
        _ = try reserve(r, user: "bob", id: "1")
        finish(r, first)
        _ = try reserve(r, id: "3")
        #expect(r.running == 3)
    }

    @Test("the same client message id finds its live stream instead of a new slot")
    func sameClientKey() throws {
        let r = registry(limit: 1)
        let first = try reserve(r, id: "m1")
        guard case .existing(let again) = try r.reserve(userId: "alice", clientMessageId: "m1", conversationId: "c1", streamId: "s-other", textDigest: "d") else {
            Issue.record("expected the existing stream")
            return
        }
        #expect(again === first)
    }

    @Test("a finished stream stays findable for the retention, then leaves memory without a timer per stream")
    func retention() async throws {
        // 3 s: a busy machine still looks it up within the retention.
        let r = registry(retention: .seconds(3))
        let entry = try reserve(r, id: "1")
        finish(r, entry)
        #expect(r.entry(streamId: entry.stream.id) === entry)
        let deadline = ContinuousClock.now + .seconds(30)
        while r.entry(streamId: entry.stream.id) != nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(r.entry(streamId: entry.stream.id) == nil)
    }

    @Test("drain returns as soon as the last running answer ends, not after the grace period, and refuses new answers")
    func drainAwaits() async throws {
        let r = registry()
        let entry = try reserve(r, id: "1")
        let started = ContinuousClock.now
        let draining = Task { await r.drain(gracePeriod: .seconds(30)) }
        let deadline = ContinuousClock.now + .seconds(20)
        while r.isAcceptingNew, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(!r.isAcceptingNew)
        #expect(throws: ChatError.shuttingDown) { _ = try reserve(r, id: "2") }
        finish(r, entry)
        await draining.value
        #expect(ContinuousClock.now - started < .seconds(25), "drain ended with the answer, before the 30 s grace")
    }

    @Test("past the grace period, drain cancels what still runs and waits for it to end")
    func drainCancels() async throws {
        let r = registry()
        let entry = try reserve(r, id: "1")
        // A model task that runs until cancelled, then ends its reservation as the runner does.
        let model = Task<TurnOutcome, Never> {
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
            return .cancelled(nil)
        }
        entry.attach(model)
        let ended = Task {
            _ = await model.value
            finish(r, entry)
        }
        await r.drain(gracePeriod: .milliseconds(50))
        #expect(model.isCancelled)
        #expect(r.running == 0)
        await ended.value
    }
}
