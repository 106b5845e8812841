@testable import MedViewCore
import MedViewProtocol
import Testing

extension ResponseStream.Batch {
    var events: [ServerEvent]? {
        if case .events(let events) = self { return events }
        return nil
    }
}

@Suite(.timeLimit(.minutes(1))) struct ResponseStreamTests {
    func chunk(_ s: ResponseStream, _ text: String) {
        s.publish { .streamChunk(StreamChunk(streamId: s.id, seq: $0, text: text)) }
    }

    func end(_ s: ResponseStream) {
        s.publish { .streamEnd(StreamEnd(streamId: s.id, seq: $0, finishReason: .complete, usage: nil)) }
    }

    func collect(_ s: ResponseStream, after: Int) async -> [ServerEvent] {
        var out: [ServerEvent] = []
        for await e in s.subscribe(after: after) { out.append(e) }
        return out
    }

    @Test("events are numbered 1, 2, 3 … and nothing is published after the terminal event")
    func numbering() {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        for i in 0..<5 { chunk(s, "\(i)") }
        end(s)
        #expect(s.publish { .streamChunk(StreamChunk(streamId: "s1", seq: $0, text: "late")) } == nil)
        #expect(s.events.map(\.seq) == [1, 2, 3, 4, 5, 6])
        #expect(s.isFinished)
    }

    @Test("a batch is everything published after a seq (within the limit), then a wait, a timeout or the end")
    func batches() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        #expect(await s.nextBatch(after: 0, timeout: .milliseconds(20)) == .timeout)
        for i in 0..<5 { chunk(s, "\(i)") }
        guard case .events(let first) = await s.nextBatch(after: 0, limit: 3) else { Issue.record("no batch"); return }
        #expect(first.map(\.seq) == [1, 2, 3])
        guard case .events(let rest) = await s.nextBatch(after: 3) else { Issue.record("no batch"); return }
        #expect(rest.map(\.seq) == [4, 5])
        let waiting = Task { await s.nextBatch(after: 5) }
        try? await Task.sleep(for: .milliseconds(20))
        chunk(s, "5")
        end(s)
        guard case .events(let live) = await waiting.value else { Issue.record("no live batch"); return }
        #expect(live.first?.seq == 6)
        let tail = live.count == 2 ? live : live + ((await s.nextBatch(after: 6)).events ?? [])
        #expect(tail.map(\.seq) == [6, 7])
        #expect(await s.nextBatch(after: 7) == .finished)
    }

    @Test("a subscriber that starts after seq N gets exactly the later events, then the live tail")
    func resume() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        for i in 0..<3 { chunk(s, "\(i)") }
        let late = Task { await collect(s, after: 2) }
        try? await Task.sleep(for: .milliseconds(20))
        chunk(s, "3")
        end(s)
        #expect(await late.value.map(\.seq) == [3, 4, 5])
    }

    @Test("two subscribers both see every event once, in order")
    func fanOut() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        let a = Task { await collect(s, after: 0) }
        let b = Task { await collect(s, after: 0) }
        for i in 0..<100 { chunk(s, "\(i)") }
        end(s)
        let ea = await a.value
        let eb = await b.value
        #expect(ea.map(\.seq) == Array(1...101))
        #expect(ea == eb)
    }

    @Test("a subscriber that never reads does not block publishing or other subscribers, and catches up later")
    func slowSubscriber() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        let stalled = s.subscribe(after: 0)
        let fast = Task { await collect(s, after: 0) }
        for i in 0..<20_000 { chunk(s, "\(i)") }
        end(s)
        #expect(await fast.value.count == 20_001)
        var seen = 0
        for await _ in stalled { seen += 1 }
        #expect(seen == 20_001)
    }

    @Test("waiting with a timeout reports the timeout, then the next event")
    func timeout() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        #expect(await s.next(after: 0, timeout: .milliseconds(30)) == .timeout)
        chunk(s, "x")
        if case .event(let e) = await s.next(after: 0, timeout: .milliseconds(30)) {
            #expect(e.seq == 1)
        } else {
            Issue.record("expected an event")
        }
        end(s)
        #expect(await s.next(after: 2) == .finished)
    }

    @Test("a reader's wait ends with a timeout only once it lasted the idle limit, wait after wait")
    func idleReader() async throws {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        let idle = Duration.milliseconds(150)
        let reader = s.reader(idle: idle, timer: CoarseTimer(tick: .milliseconds(10)))
        let clock = ContinuousClock()
        // Nothing published: the wait ends after the idle limit, and so does the next one.
        for _ in 0..<2 {
            let start = clock.now
            #expect(await reader.nextBatch(after: 0) == .timeout)
            #expect(clock.now - start >= idle)
        }
        // News inside the limit is read as news, however many short waits came before (together
        // longer than the limit): each wait is timed from its own start, not from the reading's.
        let patient = s.reader(idle: .milliseconds(1500), timer: CoarseTimer(tick: .milliseconds(100)))
        for i in 1...5 {
            let publisher = Task {
                try await Task.sleep(for: .milliseconds(400))
                chunk(s, "\(i)")
            }
            #expect(await patient.nextBatch(after: i - 1).events?.map(\.seq) == [i])
            try await publisher.value
        }
        let start = clock.now
        #expect(await reader.nextBatch(after: 5) == .timeout)
        #expect(clock.now - start >= idle)
        // Already published events come at once, then the end.
        chunk(s, "6")
        end(s)
        #expect(await reader.nextBatch(after: 5).events?.map(\.seq) == [6, 7])
        #expect(await reader.nextBatch(after: 7) == .finished)
    }

    @Test("a timeout that runs out before its wait has begun still ends that wait")
    func timeoutBeforeTheWait() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        // The timer fired first: the wait that begins afterwards ends at once, with the timeout.
        let early = s.makeWaiterId()
        s.interruptWait(early)
        #expect(await s.wait(knownCount: 0, waiterId: early) == false)
        // A zero limit races the timer against the waiter's own registration, many times over:
        // each wait must end with the timeout, none may hang.
        for _ in 0..<300 {
            #expect(await s.next(after: 0, timeout: .zero) == .timeout)
        }
        let reader = s.reader(idle: .zero, timer: CoarseTimer(tick: .milliseconds(1)))
        for _ in 0..<50 {
            #expect(await reader.nextBatch(after: 0) == .timeout)
        }
    }

    @Test("a cancelled reader's wait ends at once, as finished")
    func idleReaderCancelled() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        let reader = s.reader(idle: .seconds(600), timer: CoarseTimer(tick: .seconds(1)))
        let waiting = Task { await reader.nextBatch(after: 0) }
        try? await Task.sleep(for: .milliseconds(30))
        waiting.cancel()
        #expect(await waiting.value == .finished)
    }

    @Test("a stream rebuilt from a stored log replays it and is finished")
    func replay() async {
        let s = ResponseStream(id: "s1", userId: "u", conversationId: "c")
        chunk(s, "a")
        end(s)
        let copy = ResponseStream(id: "s1", userId: "u", conversationId: "c", replaying: s.events)
        #expect(await collect(copy, after: 1) == Array(s.events.dropFirst()))
    }
}
