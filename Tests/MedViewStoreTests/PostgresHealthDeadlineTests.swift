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
            try await withinDeadline(.milliseconds(100), operation: "checkHealth") { await gate.wait() }
        }
        // The deadline answered while the work was still waiting.
        #expect(!gate.released)
        gate.release()
        fallback.cancel()
    }

    @Test func aCheckThatFinishesInTimeGivesItsOwnOutcome() async throws {
        let rows = try await withinDeadline(.seconds(30), operation: "history") { 42 }
        #expect(rows == 42)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await withinDeadline(.seconds(30), operation: "history") { throw Refused() }
        }
    }

    /// Every store operation (``PostgresPool/run(_:_:)``) uses the same deadline; its error names
    /// the operation, never a query or its values.
    @Test func theTimeoutNamesTheOperation() async {
        let gate = Gate()
        let fallback = Task { try? await Task.sleep(for: .seconds(30)); gate.release() }
        do {
            _ = try await withinDeadline(.milliseconds(50), operation: "appendTurn") { await gate.wait(); return 1 }
            Issue.record("the deadline did not end the operation")
        } catch let error as StoreError {
            #expect(error == .unavailable("appendTurn timed out"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
        gate.release()
        fallback.cancel()
    }

    /// A patient who cancels (or a connection that closes) stops waiting at once, even for work
    /// that ignores cancellation.
    @Test func theCallersCancellationEndsTheWaitAtOnce() async {
        let gate = Gate()
        let fallback = Task { try? await Task.sleep(for: .seconds(30)); gate.release() }
        let caller = Task {
            try await withinDeadline(.seconds(30), operation: "history") { await gate.wait() }
        }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        #expect(!gate.released)
        gate.release()
        fallback.cancel()
    }
}
