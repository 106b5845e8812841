import Dispatch
import Foundation
import Synchronization

/// Runs short actions at their deadlines, each within about one `tick` after it, with one thread
/// for all of them instead of a task, a sleeping task and a Dispatch timer for each.
///
/// Every answer arms a flush deadline for the text its chunker holds back (``ChunkPipeline``), and
/// nearly every one is cancelled a moment later when the answer ends: per answer, a timer of its
/// own cost two task creations and a wake-up of Dispatch's timer thread. Here scheduling and
/// cancelling are a dictionary update under a lock. While anything is scheduled, the timer's thread
/// wakes every `tick` and runs what is due (outside the lock, earliest first); with nothing
/// scheduled it waits without waking, and after a second of that it ends (it starts again when
/// needed), so an idle service has no wake-ups and idle timers hold no thread.
///
/// The thread is the timer's own, not one of Swift's tasks: a deadline is kept even when every
/// thread of Swift's pool is busy. Actions must be short and must not block: they run on that
/// thread, one after another.
public final class CoarseTimer: Sendable {
    /// How often the timer looks for due actions while any is scheduled.
    public let tick: Duration

    private struct Entry {
        var deadline: ContinuousClock.Instant
        var action: @Sendable () -> Void
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextId: UInt64 = 0
        /// Whether the timer's thread exists.
        var running = false
        /// Whether the thread waits for work (it is signalled when some is scheduled).
        var idle = false
    }

    private let state = Mutex(State())
    /// Wakes the thread waiting for work.
    private let wakeup = DispatchSemaphore(value: 0)
    /// How long the thread waits for work before it ends.
    private static let linger: DispatchTimeInterval = .seconds(1)

    /// A timer that looks for due actions every `tick` (at least 1 ms).
    public init(tick: Duration) {
        self.tick = max(tick, .milliseconds(1))
    }

    /// The tick for deadlines `delay` away: a fifth of it, between 1 and 10 ms.
    public static func tick(for delay: Duration) -> Duration {
        min(max(delay / 5, .milliseconds(1)), .milliseconds(10))
    }

    /// Schedules `action` for `deadline` (it runs within about a tick after it); returns the token
    /// that ``cancel(_:)`` takes.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let (id, start, signal) = state.withLock { s in
            s.nextId &+= 1
            s.entries[s.nextId] = Entry(deadline: deadline, action: action)
            let start = !s.running
            let signal = s.idle
            s.running = true
            s.idle = false
            return (s.nextId, start, signal)
        }
        if start {
            let thread = Thread { [self] in run() }
            thread.name = "medview-timer"
            thread.start()
        } else if signal {
            wakeup.signal()
        }
        return id
    }

    /// Cancels a scheduled action; nothing happens if it already ran or was cancelled.
    public func cancel(_ id: UInt64) {
        state.withLock { _ = $0.entries.removeValue(forKey: id) }
    }

    /// How many actions are scheduled (for tests).
    public var scheduledCount: Int { state.withLock { $0.entries.count } }

    /// Whether the timer's thread is running (for tests: it ends a while after nothing is scheduled).
    public var isRunning: Bool { state.withLock { $0.running } }

    private func run() {
        let tickMicroseconds = UInt32(clamping: tick.components.seconds * 1_000_000 + tick.components.attoseconds / 1_000_000_000_000)
        while true {
            let now = ContinuousClock.now
            let due: [Entry]? = state.withLock { s in
                guard !s.entries.isEmpty else {
                    s.idle = true
                    return nil
                }
                let ids = s.entries.compactMap { $0.value.deadline <= now ? $0.key : nil }
                return ids.compactMap { s.entries.removeValue(forKey: $0) }
            }
            guard let due else {
                // Nothing scheduled: wait for a signal, and end after a while without one.
                if wakeup.wait(timeout: .now() + Self.linger) == .timedOut {
                    let end = state.withLock { s -> Bool in
                        guard s.idle, s.entries.isEmpty else { return false }
                        s.running = false
                        s.idle = false
                        return true
                    }
                    if end { return }
                    // Work came just as the wait ended: its signal is pending; take it.
                    wakeup.wait()
                }
                continue
            }
            for entry in due.sorted(by: { $0.deadline < $1.deadline }) {
                entry.action()
            }
            usleep(tickMicroseconds)
        }
    }
}
