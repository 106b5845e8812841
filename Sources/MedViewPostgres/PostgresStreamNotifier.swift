import Logging
import MedViewAWS
import MedViewCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Stream notices between the processes sharing one PostgreSQL database, by `LISTEN/NOTIFY` on
/// ``PostgresConversationStore/notificationChannel``.
///
/// Payloads: `a:ID,ID,…` after events were appended to those streams (sent by
/// ``PostgresConversationStore/appendStreamEvents(_:)`` once they are committed); `c:ID` asks the
/// process running stream `ID` to cancel it. Payloads carry stream ids only, never PHI.
///
/// As a `Service` it holds one dedicated connection that listens; when the connection drops
/// (the database restarts, fails over), it reconnects with exponential backoff and full jitter
/// (100 ms doubling to 5 s). Notices sent while it was away are lost: followers also poll, so a
/// lost notice delays an event by at most the poll interval, never loses it.
public final class PostgresStreamNotifier: StreamNotifier, Service, Sendable {
    private let connector: PostgresConnector
    private let store: PostgresConversationStore
    private let logger: Logger
    private let subscribers = Mutex<[UInt64: AsyncStream<StreamNotice>.Continuation]>([:])
    private let nextId = Atomic<UInt64>(0)
    private let listening = Atomic<Bool>(false)

    /// - Parameters: the same settings and credentials the store was opened with.
    public init(settings: PostgresSettings, credentials: (@Sendable () async throws -> SigV4Credentials)? = nil, store: PostgresConversationStore, logger: Logger) throws {
        self.connector = try PostgresConnector(settings: settings, credentials: credentials, logger: logger)
        self.store = store
        self.logger = logger
    }

    /// Whether the listening connection is up (tests wait for it).
    public var isListening: Bool { listening.load(ordering: .relaxed) }

    public func notices() -> AsyncStream<StreamNotice> {
        let (stream, continuation) = AsyncStream.makeStream(of: StreamNotice.self, bufferingPolicy: .bufferingNewest(4_096))
        let id = nextId.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    public func requestCancel(streamId: String) async throws {
        try await store.notify("c:" + streamId)
    }

    /// Listens until graceful shutdown, reconnecting with backoff.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var attempt = 0
            while !Task.isCancelled {
                do {
                    try await self.connector.withSingleConnection { connection in
                        try await connection.listen(on: PostgresConversationStore.notificationChannel) { notifications in
                            self.listening.store(true, ordering: .relaxed)
                            attempt = 0
                            self.logger.debug("notifier.listening")
                            for try await notification in notifications {
                                self.dispatch(notification.payload)
                            }
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    self.logger.info("notifier.disconnected", metadata: ["error.type": "\(type(of: error))"])
                }
                self.listening.store(false, ordering: .relaxed)
                attempt += 1
                let ceiling = min(5_000, 100 << min(attempt, 6))
                try? await Task.sleep(for: .milliseconds(Int.random(in: 0...ceiling)))
            }
        }
        subscribers.withLock { map in
            for continuation in map.values { continuation.finish() }
            map.removeAll()
        }
    }

    private func dispatch(_ payload: String) {
        let notice: StreamNotice
        if payload.hasPrefix("a:") {
            notice = .appended(payload.dropFirst(2).split(separator: ",").map(String.init))
        } else if payload.hasPrefix("c:") {
            notice = .cancelRequested(String(payload.dropFirst(2)))
        } else {
            return
        }
        let targets = subscribers.withLock { Array($0.values) }
        for continuation in targets { continuation.yield(notice) }
    }
}
