import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// Checkpoints a store's WAL on a thread and a handle of its own, beside the store's writes.
///
/// The checkpoint the direct writer asks for (``DirectSQLite/onLargeWAL``) used to run on the
/// store's SQLiteNIO connection, holding the store's lock: for its 5–7 ms (copying about 1,000
/// pages into the database file, then syncing the WAL and the file, most of it the WAL's sync),
/// every new or finished turn waited behind it. At one patient that was one message in 40 or so,
/// and they were the slowest first chunks (issue 16, stop 32).
///
/// What keeps it safe:
/// - Its handle (``DirectSQLite``) is used only on its thread. The checkpoint is `PASSIVE`: it
///   never waits for a writer or a reader and copies only what no reader still needs, so the
///   store's writes go on while it runs. SQLite runs one checkpoint at a time.
/// - While writes go on, a checkpoint copies only what was in the WAL when it began, and the
///   WAL starts again from its beginning only after a checkpoint that left nothing behind. Under
///   writes without a pause the WAL can therefore outgrow the checkpoints; once it is four times
///   the size that asks for one, the direct writer waits for a running checkpoint to end
///   (``waitUntilIdle(limit:)``) and checkpoints itself, writing nothing meanwhile, as every
///   checkpoint used to. So the WAL stays bounded.
/// - An erasure's `TRUNCATE` checkpoint runs inside ``pausing(_:)``, so this one never makes it
///   busy.
/// - ``close()`` ends the thread and closes its handle; requests after it are ignored.
final class WALCheckpointer: Sendable {
    private struct State {
        var requested = false
        var closed = false
        var checkpoints = 0
        var failures = 0
        var running = true
        /// A checkpoint is being run now.
        var checkpointing = false
        /// Callers in ``pausing(_:)``: no checkpoint starts meanwhile.
        var paused = 0
    }

    private let path: String
    private let logger: Logger
    private let state = Mutex(State())
    /// Wakes the thread for a request or for closing.
    private let wake = DispatchSemaphore(value: 0)
    /// Signalled once when the thread has ended.
    private let ended = DispatchSemaphore(value: 0)

    /// Starts the thread (it opens its handle when the first checkpoint is asked for).
    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "medview-checkpoint"
        thread.start()
    }

    /// Asks for a checkpoint soon; a request while one is waiting is the same request.
    func request() {
        let signal = state.withLock { state -> Bool in
            guard !state.closed, !state.requested else { return false }
            state.requested = true
            return true
        }
        if signal { wake.signal() }
    }

    /// Checkpoints run to their end so far, and those that failed (tests).
    var completed: (checkpoints: Int, failures: Int) { state.withLock { ($0.checkpoints, $0.failures) } }

    /// Whether the thread is still running (tests: it ends at ``close()``).
    var isRunning: Bool { state.withLock { $0.running } }

    /// Waits (blocking the calling thread, at most `limit`) until no checkpoint is running here:
    /// the direct writer calls it before it checkpoints a WAL that has grown to four times the
    /// size that asks for one, since SQLite would refuse a second checkpoint as busy.
    func waitUntilIdle(limit: Duration = .seconds(2)) {
        let deadline = ContinuousClock.now + limit
        while state.withLock({ $0.checkpointing }) && ContinuousClock.now < deadline {
            usleep(200)
        }
    }

    /// Runs `body` with no checkpoint running here: one under way is waited for, and none starts
    /// until `body` returns (one asked for meanwhile runs then). For the `TRUNCATE` checkpoint
    /// after an erasure, which SQLite would refuse as busy while another checkpoint runs, leaving
    /// the erased content in the WAL.
    func pausing<T>(_ body: () async throws -> T) async throws -> T {
        state.withLock { $0.paused += 1 }
        defer {
            let resume = state.withLock { state -> Bool in
                state.paused -= 1
                return state.paused == 0 && state.requested && !state.closed
            }
            if resume { wake.signal() }
        }
        while state.withLock({ $0.checkpointing }) {
            try await Task.sleep(for: .microseconds(200))
        }
        return try await body()
    }

    /// Ends the thread, after the checkpoint it is running if any, and closes its handle.
    /// Closing twice is harmless.
    func close() {
        let first = state.withLock { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        guard first else { return }
        wake.signal()
        ended.wait()
    }

    private func run() {
        var db: DirectSQLite?
        while true {
            wake.wait()
            let go = state.withLock { state -> Bool? in
                guard !state.closed else { return nil }
                // Paused: the request stays, and the pause's end wakes the thread for it.
                guard state.paused == 0 else { return false }
                state.requested = false
                state.checkpointing = true
                return true
            }
            guard let go else { break }
            guard go else { continue }
            do {
                if db == nil { db = try DirectSQLite(path: path, readOnly: false) }
                _ = try db?.query("PRAGMA wal_checkpoint(PASSIVE)")
                state.withLock { $0.checkpoints += 1; $0.checkpointing = false }
            } catch {
                // A busy database (another process writing) is tried again at the next request.
                state.withLock { $0.failures += 1; $0.checkpointing = false }
                // A direct handle's failure is SQLite's result code, never its message.
                let detail = (error as? DirectSQLite.Failure).map { "\($0)" } ?? "\(type(of: error))"
                logger.info("store.checkpoint.failed", metadata: ["error.detail": "\(detail)"])
            }
        }
        db?.close()
        state.withLock { $0.running = false }
        ended.signal()
    }
}
