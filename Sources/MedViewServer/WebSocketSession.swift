import Foundation
import Logging
import MedViewCore
import MedViewProtocol
import NIOCore
import NIOWebSocket
import Synchronization

/// One client's WebSocket: runs its commands and pumps the events of each stream it follows.
///
/// The socket's ``WebSocketFrameHandler`` hands over whole messages (``deliver(_:)``); commands
/// are handled one at a time in arrival order, by a task that exists only while some wait. Each
/// followed stream has its own pump task reading the stream's log, so a stream never waits for
/// another and a stalled socket stalls only this connection's pumps, never the model or other
/// clients. Dropping the socket stops the pumps, not the streams: the client resumes them after
/// reconnecting.
final class WebSocketSession: Sendable {
    /// Close codes this server uses beyond the standard ones.
    enum CloseCode {
        static let unauthorized = 4401
        static let idle = 4408
        static let tooManyConnections = 4429
    }

    private struct State {
        var identity: VerifiedIdentity
        var lastActivity: ContinuousClock.Instant
        var pumps: [String: (token: UInt64, task: Task<Void, Never>)] = [:]
        var nextPumpToken: UInt64 = 0
        var closing = false
        var pingInFlight = false
        /// Writes (events, pings) waiting for the socket to take them.
        var writesInFlight = 0
        /// Since when the socket has taken no write while some waited (`nil`: none waits).
        var writeWaitingSince: ContinuousClock.Instant?
        var lastPing: ContinuousClock.Instant = .now
        /// Whole messages waiting to be handled, in arrival order, and whether a task handles them.
        var inbox: [WebSocketMessage] = []
        var handling = false
    }

    private let writer: WebSocketWriter
    private let chat: ChatService
    private let verifier: any TokenVerifier
    private let limits: ServerConfiguration.Limits
    private let metrics: ServerMetrics
    private let audit: any AuditSink
    private let sourceAddress: String?
    private let logger: Logger
    private let state: Mutex<State>
    let connectionId = Identifier.make("ws")

    init(identity: VerifiedIdentity, writer: WebSocketWriter, chat: ChatService, verifier: any TokenVerifier, limits: ServerConfiguration.Limits, metrics: ServerMetrics, audit: any AuditSink, sourceAddress: String?, logger: Logger) {
        self.writer = writer
        self.audit = audit
        self.sourceAddress = sourceAddress
        self.chat = chat
        self.verifier = verifier
        self.limits = limits
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "user.id"] = "\(identity.userId)"
        self.logger = logger
        self.state = Mutex(State(identity: identity, lastActivity: .now))
    }

    var userId: String { state.withLock { $0.identity.userId } }

    /// Takes a whole message from the socket's frame handler (on its event loop) and has it
    /// handled after those before it. Returns whether the handler should keep reading: `false`
    /// once ``inboxLimit`` messages wait, and reading starts again when they are taken.
    ///
    /// Messages are handled by a task that exists only while some wait, so an idle socket keeps
    /// no task (and no task's stack slabs) at all.
    func deliver(_ message: WebSocketMessage) -> Bool {
        let (start, keepReading) = state.withLock { s -> (Bool, Bool) in
            guard !s.closing else { return (false, true) }
            s.inbox.append(message)
            let start = !s.handling
            s.handling = true
            return (start, s.inbox.count < Self.inboxLimit)
        }
        if start {
            Task { await self.handleInbox() }
        }
        return keepReading
    }

    /// Messages waiting to be handled before the socket stops being read.
    static let inboxLimit = 16

    private func handleInbox() async {
        await LogContext.$connectionId.withValue(connectionId) {
            while let message = nextMessage() {
                await receive(message)
            }
        }
    }

    private func nextMessage() -> WebSocketMessage? {
        let (message, resume) = state.withLock { s -> (WebSocketMessage?, Bool) in
            guard !s.closing, !s.inbox.isEmpty else {
                s.handling = false
                s.inbox.removeAll()
                return (nil, false)
            }
            let wasFull = s.inbox.count >= Self.inboxLimit
            return (s.inbox.removeFirst(), wasFull)
        }
        if resume { writer.resumeReading() }
        return message
    }

    /// The socket closed: stops pumping (the streams go on; the client resumes them after
    /// reconnecting) and drops messages not yet handled.
    func connectionClosed() {
        let pumps = state.withLock { s in
            s.closing = true
            s.inbox.removeAll()
            defer { s.pumps.removeAll() }
            return s.pumps.values.map(\.task)
        }
        for task in pumps { task.cancel() }
        LogContext.$connectionId.withValue(connectionId) {
            logger.debug("ws.close", metadata: ["ws.id": "\(connectionId)"])
        }
    }

    /// Sends a typed error and closes with `code`.
    func reject(_ error: ErrorEvent, closeCode: Int) async {
        await send(.error(error))
        await writer.close(code: closeCode, reason: error.code.rawValue)
    }

    /// Checks a whole message and handles it, or tells the client what is wrong with it.
    private func receive(_ message: WebSocketMessage) async {
        guard let data = message.data else {
            await sendError(ErrorEvent(code: .frameTooLarge, message: "A message may be at most \(limits.maxFrameBytes) bytes."))
            return
        }
        if message.binary {
            await sendError(ErrorEvent(code: .unsupportedFrame, message: "Send commands as JSON text frames."))
        } else if data.withUnsafeBytes({ String(validUTF8: $0.bindMemory(to: UInt8.self)) }) == nil {
            await sendError(ErrorEvent(code: .invalidUTF8, message: "The frame is not valid UTF-8."))
        } else {
            await handle(data)
        }
    }

    private func handle(_ data: Data) async {
        let command: ClientCommand
        do {
            command = try ClientCommand.decode(data)
        } catch {
            await sendError(ErrorEvent(code: error.code, message: error.message, id: error.commandId))
            return
        }
        // Idle logoff counts what the patient does, not what the page does on its own: keep-alive
        // pings and token refreshes leave the idle clock running (docs/PROTOCOL.md).
        let identity = state.withLock { s in
            if command.isUserActivity { s.lastActivity = .now }
            return s.identity
        }
        var isRefresh = false
        if case .authRefresh = command { isRefresh = true }
        if identity.expiresAt <= Date(), !isRefresh {
            await reject(ErrorEvent(code: .tokenExpired, message: AuthError.expired.message, id: command.id), closeCode: CloseCode.unauthorized)
            return
        }
        switch command {
        case .chatSend(let c):
            let accepted = ContinuousClock.now
            do {
                let result = try await chat.send(userId: identity.userId, conversationId: c.conversationId, clientMessageId: c.id, text: c.text)
                if c.conversationId == nil, !result.duplicate { record(.conversationCreated, result.conversationId) }
                record(.messageSent, result.conversationId)
                await send(.ack(Ack(id: c.id, streamId: result.stream.id, conversationId: result.conversationId, duplicate: result.duplicate ? true : nil)))
                follow(result.stream, after: 0, acceptedAt: result.duplicate ? nil : accepted)
            } catch {
                record(.messageSent, c.conversationId, refusal: error.code)
                await sendError(ErrorEvent(code: error.code, message: error.message, id: c.id, retryAfter: error.retryAfter))
            }
        case .streamResume(let c):
            do {
                let stream = try await chat.stream(id: c.streamId, userId: identity.userId)
                record(.streamResumed, stream.id)
                await send(.ack(Ack(id: c.id, streamId: stream.id, conversationId: stream.conversationId)))
                follow(stream, after: c.after)
            } catch {
                record(.streamResumed, c.streamId, refusal: error.code)
                await sendError(ErrorEvent(code: error.code, message: error.message, id: c.id, streamId: c.streamId))
            }
        case .streamCancel(let c):
            do {
                try await chat.cancel(streamId: c.streamId, userId: identity.userId)
                record(.streamCancelled, c.streamId)
                await send(.ack(Ack(id: c.id, streamId: c.streamId)))
            } catch {
                record(.streamCancelled, c.streamId, refusal: error.code)
                await sendError(ErrorEvent(code: error.code, message: error.message, id: c.id, streamId: c.streamId))
            }
        case .authRefresh(let c):
            do {
                let fresh = try await verifier.verify(c.token)
                guard fresh.userId == identity.userId else {
                    await sendError(ErrorEvent(code: .unauthorized, message: "The new token names a different user.", id: c.id))
                    return
                }
                state.withLock { $0.identity = fresh }
                await send(.ack(Ack(id: c.id, expiresAt: fresh.expiresAt.timeIntervalSince1970)))
            } catch {
                await sendError(ErrorEvent(code: error.errorCode, message: error.message, id: c.id))
            }
        case .ping(let c):
            await send(.ack(Ack(id: c.id)))
        }
    }

    /// Adds what this connection's user did to `record` to the audit trail.
    private func record(_ action: AuditEvent.Action, _ record: String?, refusal: ErrorCode? = nil) {
        let outcome: AuditEvent.Outcome = refusal.map { $0.httpStatus >= 500 ? .failed : .refused } ?? .success
        audit.record(AuditEvent(action: action, userId: userId, channelId: connectionId, sourceAddress: sourceAddress, record: record, outcome: outcome, reason: refusal?.rawValue))
    }

    // MARK: - Writing

    /// Starts (or restarts) pumping `stream` from the event after `after`.
    /// `acceptedAt` is when the `chat.send` that started the answer was accepted, so that the
    /// first chunk's time as the patient sees it is measured; `nil` for a resume.
    private func follow(_ stream: ResponseStream, after: Int, acceptedAt: ContinuousClock.Instant? = nil) {
        let (token, previous) = state.withLock { s -> (UInt64, Task<Void, Never>?) in
            s.nextPumpToken += 1
            return (s.nextPumpToken, s.pumps[stream.id]?.task)
        }
        previous?.cancel()
        let task = Task {
            var last = after
            var firstChunkFrom = acceptedAt
            while case .event(let event) = await stream.next(after: last) {
                guard await self.send(event) else { break }
                last = event.seq ?? last
                if case .streamChunk(let chunk) = event {
                    let now = ContinuousClock.now
                    if let published = stream.publishedAt(seq: last) {
                        self.metrics.delivered(chunkOf: chunk.text.unicodeScalars.count, after: now - published, transport: .websocket)
                    }
                    if let from = firstChunkFrom {
                        self.metrics.firstChunkDelivered(after: now - from, transport: .websocket)
                        firstChunkFrom = nil
                    }
                }
            }
            self.state.withLock { s in
                if s.pumps[stream.id]?.token == token { s.pumps[stream.id] = nil }
            }
        }
        let closing = state.withLock { s -> Bool in
            if s.closing { return true }
            s.pumps[stream.id] = (token, task)
            return false
        }
        if closing { task.cancel() }
    }

    /// Waits, for at most `timeout`, until every stream this connection follows has been written
    /// out to its last event (on shutdown, after the drain has ended every stream, so that the
    /// terminal events reach the client before the socket closes).
    func finishDelivery(within timeout: Duration) async {
        let pumps = state.withLock { s in s.pumps.values.map(\.task) }
        guard !pumps.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for pump in pumps { await pump.value }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    @discardableResult
    private func send(_ event: ServerEvent) async -> Bool {
        do {
            try await writing { try await writer.send(text: event.jsonString()) }
            return true
        } catch {
            return false
        }
    }

    /// Runs one write to the socket, timing how long writes wait (``verdict(now:date:)``): a
    /// write that completes is progress and restarts the clock of any still waiting.
    private func writing(_ write: () async throws -> Void) async throws {
        state.withLock { s in
            if s.writesInFlight == 0 { s.writeWaitingSince = .now }
            s.writesInFlight += 1
        }
        defer {
            state.withLock { s in
                s.writesInFlight -= 1
                s.writeWaitingSince = s.writesInFlight == 0 ? nil : .now
            }
        }
        try await write()
    }

    private func sendError(_ error: ErrorEvent) async {
        metrics.error(error.code.rawValue)
        await send(.error(error))
    }

    // MARK: - Idle, expiry and keep-alive (driven by the shared ``SessionSweeper``)

    /// What the sweeper should do with this session now.
    enum Verdict {
        case fine
        case expired
        case idle
        /// The client has taken no write for ``ServerConfiguration/Limits/writeStallTimeout``.
        case stalled
    }

    /// Checks expiry and idleness. User commands (``ClientCommand/isUserActivity``) and an answer
    /// streaming to the client count as activity; pings and token refreshes do not.
    func verdict(now: ContinuousClock.Instant, date: Date) -> Verdict {
        state.withLock { s in
            if s.closing { return .fine }
            if let since = s.writeWaitingSince, now - since >= limits.writeStallTimeout { return .stalled }
            if s.identity.expiresAt <= date { return .expired }
            if !s.pumps.isEmpty {
                s.lastActivity = now
                return .fine
            }
            return now - s.lastActivity >= limits.idleTimeout ? .idle : .fine
        }
    }

    /// Closes the session for `verdict` with its typed error.
    func enforce(_ verdict: Verdict) async {
        switch verdict {
        case .fine: return
        case .expired:
            await reject(ErrorEvent(code: .tokenExpired, message: "The token expired; refresh it with auth.refresh before it does."), closeCode: CloseCode.unauthorized)
        case .idle:
            logger.debug("ws.idle_timeout", metadata: ["ws.id": "\(connectionId)"])
            await reject(ErrorEvent(code: .idleTimeout, message: "The connection was idle too long; reconnect to continue."), closeCode: CloseCode.idle)
        case .stalled:
            // Nothing more can be written (not even a close frame): drop the connection. Its
            // answers go on and are stored; the client reconnects and resumes them.
            logger.info("ws.write_stalled", metadata: ["ws.id": "\(connectionId)"])
            metrics.connectionStalled()
            writer.drop()
        }
    }

    /// Sends a WebSocket ping if the keep-alive interval has passed and none is in flight.
    func pingIfDue(now: ContinuousClock.Instant) {
        let due = state.withLock { s -> Bool in
            guard !s.closing, !s.pingInFlight, now - s.lastPing >= limits.keepAliveInterval else { return false }
            s.pingInFlight = true
            s.lastPing = now
            return true
        }
        guard due else { return }
        Task {
            try? await writing { try await writer.ping() }
            state.withLock { $0.pingInFlight = false }
        }
    }
}

extension ClientCommand {
    /// Whether this command is something the patient did (send, resume, cancel), as opposed to
    /// housekeeping the client does by itself (`ping`, `auth.refresh`). Only the former keeps an
    /// idle connection open.
    var isUserActivity: Bool {
        switch self {
        case .chatSend, .streamResume, .streamCancel: true
        case .ping, .authRefresh: false
        }
    }
}
