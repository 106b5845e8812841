import Foundation
import MedViewCore
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1))) struct CoarseTimerTests {
    /// Waits (polling) until `condition` holds or `limit` passes; returns whether it held.
    func eventually(within limit: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + limit
        while clock.now < end {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return condition()
    }

    @Test("actions run after their deadlines, earliest first; a cancelled one never runs")
    func deadlinesAndCancel() async {
        let timer = CoarseTimer(tick: .milliseconds(5))
        let ran = Mutex<[(Int, ContinuousClock.Instant)]>([])
        let start = ContinuousClock.now
        let deadlines = [3: start + .milliseconds(90), 1: start + .milliseconds(30), 2: start + .milliseconds(60)]
        for (name, deadline) in deadlines {
            timer.schedule(at: deadline) { ran.withLock { $0.append((name, .now)) } }
        }
        let cancelled = timer.schedule(at: start + .milliseconds(45)) { ran.withLock { $0.append((99, .now)) } }
        timer.cancel(cancelled)
        #expect(await eventually { ran.withLock { $0.count } == 3 })
        let runs = ran.withLock { $0 }
        #expect(runs.map(\.0) == [1, 2, 3])
        for (name, at) in runs {
            #expect(at >= deadlines[name]!, "action \(name) ran before its deadline")
        }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(!ran.withLock { $0.contains { $0.0 == 99 } })
    }

    @Test("with nothing scheduled the timer's task ends, and starts again for a new action")
    func idleEnds() async {
        let timer = CoarseTimer(tick: .milliseconds(2))
        let count = Mutex(0)
        timer.schedule(at: .now) { count.withLock { $0 += 1 } }
        #expect(timer.isRunning)
        #expect(await eventually { count.withLock { $0 } == 1 })
        #expect(await eventually { !timer.isRunning })
        #expect(timer.scheduledCount == 0)
        timer.schedule(at: .now + .milliseconds(10)) { count.withLock { $0 += 1 } }
        #expect(await eventually { count.withLock { $0 } == 2 })
        #expect(await eventually { !timer.isRunning })
    }

    @Test("the tick follows the delay it serves: a fifth of it, from 1 to 10 ms")
    func ticks() {
        #expect(CoarseTimer.tick(for: .milliseconds(50)) == .milliseconds(10))
        #expect(CoarseTimer.tick(for: .milliseconds(20)) == .milliseconds(4))
        #expect(CoarseTimer.tick(for: .microseconds(100)) == .milliseconds(1))
        #expect(CoarseTimer.tick(for: .seconds(5)) == .milliseconds(10))
    }
    @Test("a deadline is kept while every thread of Swift's pool is busy")
    func keptWhenThePoolIsBusy() async {
        let timer = CoarseTimer(tick: .milliseconds(5))
        let ranAt = Mutex<ContinuousClock.Instant?>(nil)
        let start = ContinuousClock.now
        timer.schedule(at: start + .milliseconds(50)) { ranAt.withLock { $0 = .now } }
        // Occupy more threads than the pool has for 1.5 s, without yielding.
        let blockers = (0..<max(4, ProcessInfo.processInfo.activeProcessorCount * 2)).map { _ in
            Task.detached { usleep(1_500_000) }
        }
        for blocker in blockers { await blocker.value }
        let at = ranAt.withLock { $0 }
        #expect(at != nil)
        if let at { #expect(at - start < .milliseconds(1000), "the action ran \(at - start) after scheduling") }
    }
}
