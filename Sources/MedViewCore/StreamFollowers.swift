import Logging
import MedViewProtocol
import ServiceLifecycle
import Synchronization

/// Answers that another process is streaming, followed through the shared store, so that a
/// client may resume any stream on any process.
///
/// A followed answer is a ``ResponseStream`` seeded with the events persisted so far; a task
/// reads the events appended after them whenever the ``StreamNotifier`` says the stream grew
/// (and at least every `pollInterval`, so a lost notice costs latency, never events) and
/// appends them in order, until the terminal event: the one the owner stored, or the
/// `interrupted` error ``StreamRecovery`` stores when the owner died. Every client of one answer
/// on this process shares one follower. Clients subscribe to it exactly as to a local answer,
/// so they get each event once, in order.
///
/// As a `Service` it consumes the notifier's notices: it wakes followers, and cancels the local
/// answers other processes were asked to cancel.
public final class StreamFollowers: Service, Sendable {
    private final class Follower: Sendable {
        let stream: ResponseStream
        let bell = Doorbell()
        init(stream: ResponseStream) { self.stream = stream }
    }

    private let store: any ConversationStore
    private let registry: StreamRegistry
    private let notifier: (any StreamNotifier)?
    private let pollInterval: Duration
    private let logger: Logger
    private let followers = Mutex<[String: Follower]>([:])

    /// - Parameter pollInterval: the longest a follower waits between reads of the store.
    public init(store: any ConversationStore, registry: StreamRegistry, notifier: (any StreamNotifier)?, pollInterval: Duration, logger: Logger) {
        self.store = store
        self.registry = registry
        self.notifier = notifier
        self.pollInterval = pollInterval
        self.logger = logger
    }

    /// How many answers of other processes this one follows now.
    public var count: Int { followers.withLock { $0.count } }

    /// The follower of a turn still streaming on another process: an existing one, or a new one
    /// seeded with the turn's persisted events.
    func follow(_ turn: Turn) throws(ChatError) -> ResponseStream {
        var events: [ServerEvent] = []
        for entry in turn.events {
            guard entry.seq == events.count + 1 else { break } // only the persisted prefix
            guard let event = try? ServerEvent.decode(entry.json) else { throw .storedStreamUnreadable }
            events.append(event)
        }
        let (follower, isNew) = followers.withLock { map -> (Follower, Bool) in
            if let existing = map[turn.streamId] { return (existing, false) }
            let follower = Follower(stream: ResponseStream(id: turn.streamId, userId: turn.userId, conversationId: turn.conversationId, replaying: events, finished: false))
            map[turn.streamId] = follower
            return (follower, true)
        }
        if isNew {
            logger.debug("stream.following", metadata: ["stream.id": "\(turn.streamId)", "stream.events": "\(events.count)"])
            Task { await self.pump(follower) }
        }
        return follower.stream
    }

    /// Reads the follower's new events until its terminal event.
    private func pump(_ follower: Follower) async {
        let stream = follower.stream
        defer { _ = followers.withLock { $0.removeValue(forKey: stream.id) } }
        var failures = 0
        while !stream.isFinished {
            await follower.bell.wait(timeout: pollInterval)
            let page: StreamEventsPage?
            do {
                page = try await store.streamEvents(streamId: stream.id, userId: stream.userId, after: stream.nextSeq - 1)
                failures = 0
            } catch {
                failures += 1
                logger.info("stream.follow.read_failed", metadata: .failure(error, ["stream.id": "\(stream.id)"]))
                // The store is away: keep trying (the answer is stored by its owner meanwhile).
                try? await Task.sleep(for: min(pollInterval * failures, .seconds(5)))
                continue
            }
            guard let page else {
                // Erased while it streamed: end it the way a local erasure does.
                stream.appendLogged(.error(ErrorEvent(code: .notFound, message: WireMapping.error(.streamNotFound).message, streamId: stream.id, seq: stream.nextSeq)))
                return
            }
            for entry in page.events {
                guard entry.seq == stream.nextSeq else { break }
                guard let event = try? ServerEvent.decode(entry.json) else {
                    stream.appendLogged(.error(ErrorEvent(code: .internalError, message: WireMapping.error(.storedStreamUnreadable).message, streamId: stream.id, seq: stream.nextSeq)))
                    return
                }
                stream.appendLogged(event)
            }
        }
    }

    /// Consumes notices until graceful shutdown.
    public func run() async throws {
        guard let notifier else {
            try? await gracefulShutdown()
            return
        }
        for await notice in notifier.notices().cancelOnGracefulShutdown() {
            switch notice {
            case .appended(let streamIds):
                let bells = followers.withLock { map in streamIds.compactMap { map[$0]?.bell } }
                for bell in bells { bell.ring() }
            case .cancelRequested(let streamId):
                if let entry = registry.entry(streamId: streamId) {
                    logger.debug("stream.cancel.remote", metadata: ["stream.id": "\(streamId)"])
                    entry.requestCancel()
                }
            }
        }
    }

    /// Asks the process running `streamId` to cancel it (the caller checked it is the user's).
    func requestRemoteCancel(streamId: String) async throws(ChatError) {
        guard let notifier else { return }
        do {
            try await notifier.requestCancel(streamId: streamId)
        } catch {
            throw .storageUnavailable(.loadStream)
        }
    }
}
