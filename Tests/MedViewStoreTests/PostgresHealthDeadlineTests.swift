import Foundation
import MedViewCore
@testable import MedViewPostgres
import Synchronization
import Testing

/// `/readyz` must answer even when the database goes silent: the health check's deadline does not
/// wait for a check that ignores cancellation (the CI failure of stop 17: a readiness probe that
/// hung for more than 30 seconds after the database connection was cut).
@Suite struct PostgresHealthDeadlineTests {
    /// Work that ignores cancellation: it waits, without holding a thread, until released.
    final class Gate: Sendable {
        private let state = Mutex<(released: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

        var released: Bool { state.withLock { $0.released } }

        func wait() async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.released { return true }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        }

        func release() {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.released = true
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }

    @Test func aCheckThatIgnoresCancellationStillEndsAtTheDeadline() async {
        let gate = Gate()
        // Only so that a deadline that waits for the work cannot hang the suite.
        let fallback = Task { try? await Task.sleep(for: .seconds(30)); gate.release() }
        await #expect(throws: StoreError.self) {
            try await PostgresConversationStore.withinDeadline(.milliseconds(100)) { await gate.wait() }
        }
        // The deadline answered while the work was still waiting.
        #expect(!gate.released)
        gate.release()
        fallback.cancel()
    }

    @Test func aCheckThatFinishesInTimeGivesItsOwnOutcome() async throws {
        try await PostgresConversationStore.withinDeadline(.seconds(30)) {}
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await PostgresConversationStore.withinDeadline(.seconds(30)) { throw Refused() }
        }
    }
}
