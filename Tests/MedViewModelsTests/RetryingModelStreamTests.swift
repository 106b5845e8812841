import Foundation
import MedViewCore
import MedViewModels
import Synchronization
import Testing

@Suite struct RetryingModelStreamTests {
    /// Counts attempts and serves a scripted outcome per attempt.
    final class Attempts: Sendable {
        let count = Mutex(0)
        let outcomes: [[Result<ModelEvent, ModelError>]]
        init(_ outcomes: [[Result<ModelEvent, ModelError>]]) { self.outcomes = outcomes }

        func run(_ number: Int) -> AsyncThrowingStream<ModelEvent, any Error> {
            count.withLock { $0 += 1 }
            let script = outcomes[min(number - 1, outcomes.count - 1)]
            return AsyncThrowingStream { continuation in
                for step in script {
                    switch step {
                    case .success(let event): continuation.yield(event)
                    case .failure(let error): continuation.finish(throwing: error); return
                    }
                }
                continuation.finish()
            }
        }
    }

    static let throttled = ModelError(kind: .throttled, retryable: true, detail: "throttlingException")
    static let broken = ModelError(kind: .failed, retryable: true, detail: "modelStreamErrorException")
    static let invalid = ModelError(kind: .invalidRequest, retryable: false, detail: "validationException")

    func collect(_ stream: AsyncThrowingStream<ModelEvent, any Error>) async -> ([ModelEvent], (any Error)?) {
        var events: [ModelEvent] = []
        do {
            for try await event in stream { events.append(event) }
            return (events, nil)
        } catch {
            return (events, error)
        }
    }

    @Test func throttledThenSuccessfulRequestSucceedsAfterRetry() async {
        let attempts = Attempts([[.failure(Self.throttled)], [.success(.delta("Hi")), .success(.stop(.endTurn))]])
        let retries = Mutex<[Int]>([])
        let stream = RetryingModelStream.make(policy: .init(maxAttempts: 3), sleep: { _ in }, onRetry: { n, _ in retries.withLock { $0.append(n) } }, attempt: attempts.run)
        let (events, error) = await collect(stream)
        #expect(error == nil)
        #expect(events == [.delta("Hi"), .stop(.endTurn)])
        #expect(attempts.count.withLock { $0 } == 2)
        #expect(retries.withLock { $0 } == [2])
    }

    @Test func failureAfterTheFirstDeltaIsNeverRetried() async {
        let attempts = Attempts([[.success(.delta("Part")), .failure(Self.broken)], [.success(.delta("again"))]])
        let (events, error) = await collect(RetryingModelStream.make(policy: .init(maxAttempts: 3), sleep: { _ in }, attempt: attempts.run))
        #expect(events == [.delta("Part")])
        #expect(error as? ModelError == Self.broken)
        #expect(attempts.count.withLock { $0 } == 1)
    }

    @Test func nonRetryableErrorsAndTheLastAttemptPassThrough() async {
        let invalid = Attempts([[.failure(Self.invalid)]])
        let (_, first) = await collect(RetryingModelStream.make(policy: .init(maxAttempts: 3), sleep: { _ in }, attempt: invalid.run))
        #expect(first as? ModelError == Self.invalid)
        #expect(invalid.count.withLock { $0 } == 1)

        let alwaysThrottled = Attempts([[.failure(Self.throttled)]])
        let (_, last) = await collect(RetryingModelStream.make(policy: .init(maxAttempts: 3), sleep: { _ in }, attempt: alwaysThrottled.run))
        #expect(last as? ModelError == Self.throttled)
        #expect(alwaysThrottled.count.withLock { $0 } == 3)
    }

    @Test func aProvidersRetryAfterIsWaitedAndAnAskTooLongIsNotRetried() async {
        var asked = Self.throttled
        asked.retryAfter = .seconds(3)
        let waits = Mutex<[Duration]>([])
        let attempts = Attempts([[.failure(asked)], [.success(.delta("Hi")), .success(.stop(.endTurn))]])
        let policy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .milliseconds(500), maxRetryAfter: .seconds(20))
        let (events, error) = await collect(RetryingModelStream.make(policy: policy, sleep: { d in waits.withLock { $0.append(d) } }, attempt: attempts.run))
        #expect(error == nil && events.count == 2)
        #expect(waits.withLock { $0 } == [.seconds(3)], "the backoff (≤ 0.1 s) is raised to the 3 s asked for")

        var tooLong = Self.throttled
        tooLong.retryAfter = .seconds(120)
        let patient = Attempts([[.failure(tooLong)], [.success(.delta("late"))]])
        let (none, failure) = await collect(RetryingModelStream.make(policy: policy, sleep: { d in waits.withLock { $0.append(d) } }, attempt: patient.run))
        #expect(none.isEmpty)
        #expect(failure as? ModelError == tooLong)
        #expect(patient.count.withLock { $0 } == 1, "not retried: the patient hears at once")
        #expect(waits.withLock { $0.count } == 1)
    }

    @Test func retryAfterHeadersAreReadAsSecondsMillisecondsOrAnHTTPDate() {
        let now = Date(timeIntervalSince1970: 784_111_777)  // Sun, 06 Nov 1994 08:49:37 GMT
        #expect(RetryAfter.parse(milliseconds: nil, retryAfter: "3", now: now) == .seconds(3))
        #expect(RetryAfter.parse(milliseconds: nil, retryAfter: " 1.5 ", now: now) == .milliseconds(1500))
        #expect(RetryAfter.parse(milliseconds: "250", retryAfter: "3", now: now) == .milliseconds(250))
        #expect(RetryAfter.parse(milliseconds: "soon", retryAfter: "2", now: now) == .seconds(2))
        #expect(RetryAfter.parse(milliseconds: nil, retryAfter: "Sun, 06 Nov 1994 08:49:47 GMT", now: now) == .seconds(10))
        #expect(RetryAfter.parse(milliseconds: nil, retryAfter: "Sun, 06 Nov 1994 08:49:00 GMT", now: now) == nil, "in the past")
        for junk in ["", "-1", "soon", "1e400", "nan", "Tomorrow", "86400"] {
            #expect(RetryAfter.parse(milliseconds: nil, retryAfter: junk, now: now) == nil, "\(junk)")
        }
        #expect(RetryAfter.parse(milliseconds: nil, retryAfter: nil, now: now) == nil)
    }

    @Test func waitsGrowExponentiallyWithFullJitterUnderTheCap() {
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(100), maxDelay: .milliseconds(700))
        #expect(policy.ceiling(beforeRetry: 1) == .milliseconds(100))
        #expect(policy.ceiling(beforeRetry: 2) == .milliseconds(200))
        #expect(policy.ceiling(beforeRetry: 3) == .milliseconds(400))
        #expect(policy.ceiling(beforeRetry: 4) == .milliseconds(700))
        var generator = SystemRandomNumberGenerator()
        var sawBelowHalf = false
        for _ in 0..<200 {
            let wait = policy.delay(beforeRetry: 3, using: &generator)
            #expect(wait >= .zero && wait <= .milliseconds(400))
            if wait < .milliseconds(200) { sawBelowHalf = true }
        }
        #expect(sawBelowHalf, "full jitter spreads waits over the whole range")
    }
}
