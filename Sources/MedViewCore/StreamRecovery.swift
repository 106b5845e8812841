import Foundation
import Logging
import MedViewProtocol
import ServiceLifecycle

/// Ends the answers of server processes that stopped without ending them (SIGKILL, a crash, a
/// lost machine), and keeps this process's heartbeat, by which the others know it is alive.
///
/// An answer whose owner has recorded no heartbeat for `staleAfter` is stored `failed` with the
/// text its clients were sent (the `stream.chunk` events persisted by ``StreamJournal``), and
/// its replay log ends with a retryable `interrupted` error; a client resuming it gets the
/// persisted events, then that error. ``ConversationStore/finishTurn(_:)`` finishes only a turn
/// still streaming, so when several processes recover one answer at once, one ending is stored.
///
/// With a store only this process uses (SQLite), every answer still streaming at start-up is an
/// orphan (``recoverAtStartup(exclusive:)``); with a shared one, an answer is an orphan once its
/// owner's heartbeat is older than `staleAfter`, which is also how long a dead process's answers
/// (and its share of the per-user limits) may wait to be recovered.
public final class StreamRecovery: Service, Sendable {
    /// This process's id, recorded on every turn it begins.
    public let instanceId: String
    private let store: any ConversationStore
    private let heartbeatInterval: Duration
    private let staleAfter: Duration
    private let logger: Logger

    public init(store: any ConversationStore, instanceId: String, heartbeatInterval: Duration, staleAfter: Duration, logger: Logger) {
        self.store = store
        self.instanceId = instanceId
        self.heartbeatInterval = heartbeatInterval
        self.staleAfter = staleAfter
        self.logger = logger
    }

    /// Records the first heartbeat (before this process begins any turn), then recovers the
    /// orphans: all streaming turns when the store is this process's alone (`exclusive`), else
    /// those of processes silent for `staleAfter`. Returns how many it recovered.
    public func recoverAtStartup(exclusive: Bool) async throws -> Int {
        try await store.recordHeartbeat(instanceId: instanceId, at: Date())
        let since = exclusive ? Date.distantFuture : Date() - staleAfter.timeInterval
        return try await recoverOrphans(notAliveSince: since)
    }

    /// Recovers up to a batch at a time every turn whose owner has been silent since `date`.
    @discardableResult
    public func recoverOrphans(notAliveSince date: Date) async throws -> Int {
        var total = 0
        while true {
            let orphans = try await store.orphanedTurns(notAliveSince: date, limit: 100)
            for turn in orphans where turn.ownerInstanceId != instanceId || date == .distantFuture {
                try await recover(turn)
                total += 1
            }
            if orphans.count < 100 { break }
        }
        if total > 0 { logger.info("streams.recovered", metadata: ["streams.count": "\(total)"]) }
        return total
    }

    /// Stores the orphan's ending: its persisted prefix, then the `interrupted` error.
    private func recover(_ turn: Turn) async throws {
        var events: [StreamLogEntry] = []
        var text = ""
        for entry in turn.events.sorted(by: { $0.seq < $1.seq }) {
            guard entry.seq == events.count + 1 else { break }
            let event = try? ServerEvent.decode(entry.json)
            if event?.isTerminal == true { break }
            if case .streamChunk(let chunk)? = event { text += chunk.text }
            events.append(entry)
        }
        let terminal = WireMapping.interruptedTerminal(streamId: turn.streamId, seq: events.count + 1)
        events.append(StreamLogEntry(seq: events.count + 1, json: terminal.jsonString()))
        try await store.finishTurn(TurnCompletion(streamId: turn.streamId, userId: turn.userId, assistantText: text, status: .failed, events: events))
        logger.info("stream.recovered", metadata: ["stream.id": "\(turn.streamId)", "stream.events": "\(events.count)"])
    }

    /// Records a heartbeat every `heartbeatInterval` and recovers other processes' orphans, until
    /// graceful shutdown. Store failures are logged and retried at the next beat.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.heartbeatInterval)
                guard !Task.isCancelled else { break }
                do {
                    try await self.store.recordHeartbeat(instanceId: self.instanceId, at: Date())
                    try await self.recoverOrphans(notAliveSince: Date() - self.staleAfter.timeInterval)
                } catch {
                    self.logger.info("streams.recovery.failed", metadata: .failure(error))
                }
            }
        }
    }
}

extension Duration {
    /// The duration in seconds, as `TimeInterval` (to offset a `Date`).
    public var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
