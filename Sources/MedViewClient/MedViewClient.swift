import AsyncHTTPClient
import Foundation
import Logging
import MedViewProtocol
import NIOCore

/// The MedView Companion client: keeps a patient connected and delivers every answer exactly once,
/// whatever the network does.
///
/// - WebSocket first; Server-Sent Events when the socket cannot connect or keeps dropping while
///   plain HTTP works, and back to the WebSocket later.
/// - Lost connections are reopened with exponential backoff and full jitter; unfinished answers
///   are resumed from their last sequence number, so nothing is missed or repeated.
/// - Every message has an idempotency id and waits in a queue (optionally a file) until the server
///   acknowledges it; queued messages go out one at a time, in order, after reconnecting.
/// - The token is renewed before it expires and handed to the open socket (`auth.refresh`).
///
/// ```swift
/// let client = MedViewClient(configuration: .init(baseURL: "https://companion.example.com")) { reason in
///     try await session.accessToken(forceRefresh: reason != .connect)
/// }
/// await client.connect()
/// for await event in await client.send("Can I take ibuprofen with warfarin?") { … }
/// await client.close()
/// ```
public actor MedViewClient {
    public let configuration: MedViewClientConfiguration
    private let tokenProvider: TokenProvider
    private let logger: Logger
    private let injectedHTTPClient: HTTPClient?
    private var ownHTTPClient: HTTPClient?

    private var state: ConnectionState = .idle
    private var observers: [UUID: AsyncStream<ConnectionState>.Continuation] = [:]
    private var stats = ClientStatistics()

    private var token: AccessToken?
    private var tokenObtainedAt = Date()

    private var mode: Transport = .webSocket
    private var link: WebSocketLink?
    private var linkLive = false
    private var linkCounter = 0
    private var pending: [String: PendingCommand] = [:]
    private var commandCounter = 0

    private var outbox: Outbox
    private var inFlight: String?
    private var tries: [String: Int] = [:]
    private var answers: [String: AnswerSink] = [:]
    private var streams: [String: StreamRecord] = [:]
    private var cancelWhenKnown: Set<String> = []
    private var cancelsToDeliver: Set<String> = []

    private var started = false
    private var stopped = false
    private var runTask: Task<Void, Never>?
    private var refreshTask: Task<Void, Never>?
    private var heartbeatTask: Task<Void, Never>?
    private var sleeper: Task<Void, Never>?
    /// SSE requests in progress (their responses can stream for a long time), cancelled by ``close()``.
    private var eventStreamTasks: [Int: Task<Void, Never>] = [:]
    private var eventStreamTaskCounter = 0
    private var retryScheduled = false
    private var eventStreamBackoff: Backoff
    private var wsFailures = 0
    private var refusals = 0
    private var drops: [ContinuousClock.Instant] = []

    /// Creates a client; nothing happens until ``connect()``.
    ///
    /// - Parameters:
    ///   - httpClient: the HTTP client for REST and SSE; by default the client makes its own and
    ///     shuts it down in ``close()``.
    ///   - tokenProvider: where tokens come from (see ``TokenProvider``).
    public init(configuration: MedViewClientConfiguration, httpClient: HTTPClient? = nil, logger: Logger = Logger(label: "medview.client"), tokenProvider: @escaping TokenProvider) {
        self.configuration = configuration
        self.tokenProvider = tokenProvider
        self.logger = logger
        self.injectedHTTPClient = httpClient
        self.outbox = Outbox(file: configuration.outboxFile)
        self.eventStreamBackoff = configuration.backoff
        for item in outbox.items { answers[item.id] = AnswerSink(messageId: item.id) }
    }

    // MARK: - Public API

    /// Starts connecting (and keeps the connection up until ``close()``). Calling it again does nothing.
    public func connect() {
        guard !started, !stopped else { return }
        started = true
        setState(.connecting)
        runTask = Task { await self.run() }
        refreshTask = Task { await self.refreshLoop() }
    }

    /// Stops everything: closes the socket and requests, ends unfinished answers with
    /// ``MedViewClientError/stopped``, and shuts down the client's own HTTP client. Queued messages
    /// stay in the outbox file, if there is one.
    public func close() async {
        stop(.closed)
        let tasks = [runTask, refreshTask]
        for task in tasks { task?.cancel() }
        for task in tasks { await task?.value }
        if let client = ownHTTPClient {
            ownHTTPClient = nil
            try? await client.shutdown()
        }
    }

    /// The connection state now.
    public var connectionState: ConnectionState { state }

    /// Counters of what the client did.
    public var statistics: ClientStatistics { stats }

    /// The connection state as it changes, starting with the current one.
    public func connectionStates() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream(bufferingPolicy: .bufferingNewest(32))
        continuation.yield(state)
        if case .stopped = state {
            continuation.finish()
            return stream
        }
        let key = UUID()
        observers[key] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeObserver(key) }
        }
        return stream
    }

    /// Sends a message and returns its answer. The message is queued until the server
    /// acknowledges it (and sent once, in order, after a reconnect); `id` is its idempotency key:
    /// pass the same id only to retry the same message.
    public func send(_ text: String, to target: ConversationTarget = .newConversation(), id: String = UUID().uuidString.lowercased()) -> Answer {
        if let existing = answers[id] { return existing.answer }
        let sink = AnswerSink(messageId: id)
        answers[id] = sink
        guard !stopped else {
            finish(id, with: .failed(AnswerFailure(error: .stopped, partialText: "")))
            return sink.answer
        }
        outbox.append(OutboxItem(id: id, text: text, target: target))
        pump()
        return sink.answer
    }

    /// Follows an answer that is already streaming (or finished), from `after`: for example an
    /// answer still being written when the app opens its conversation.
    public func follow(streamId: String, after: Int = 0) -> Answer {
        let key = "follow:" + streamId
        if let existing = answers[key] { return existing.answer }
        let sink = AnswerSink(messageId: key)
        answers[key] = sink
        streams[streamId] = StreamRecord(messageId: key, lastSeq: max(0, after))
        answers[key]?.streamId = streamId
        resume(streamId)
        return sink.answer
    }

    /// The answer of a message still in the queue (for example one restored from the outbox file
    /// after a restart), or of one still streaming.
    public func answer(forMessageId id: String) -> Answer? {
        answers[id]?.answer
    }

    /// Ids of the messages not yet acknowledged by the server, in order.
    public var queuedMessageIds: [String] { outbox.items.map(\.id) }

    /// Stops an answer. A message not sent yet is taken out of the queue (its answer ends as
    /// cancelled, empty); a sent one is cancelled on the server (its answer then ends with
    /// finish reason `cancelled` and the text sent so far). Delivered later if the connection is down.
    public func cancel(_ answer: Answer) {
        cancel(messageId: answer.messageId)
    }

    /// Stops the answer of message `messageId` (see ``cancel(_:)``).
    public func cancel(messageId: String) {
        if outbox.contains(messageId), inFlight != messageId {
            outbox.remove(messageId)
            finish(messageId, with: .ended(AnswerEnd(finishReason: .cancelled, usage: nil, text: "")))
            return
        }
        guard let streamId = answers[messageId]?.streamId else {
            if answers[messageId] != nil { cancelWhenKnown.insert(messageId) }
            return
        }
        deliverCancel(streamId)
    }

    /// Reconnects now instead of waiting for the backoff delay (the network came back, the app
    /// returned to the foreground, the person tapped "try again").
    public func reconnectNow() {
        eventStreamBackoff.reset()
        sleeper?.cancel()
    }

    /// The signed-in user's conversations, most recently updated first.
    public func conversations() async throws -> [ConversationSummary] {
        try await withToken { api, token in try await api.listConversations(token: token) }
    }

    /// The stored messages of a conversation, in the order they were written.
    public func messages(in conversationId: String) async throws -> [StoredMessage] {
        try await withToken { api, token in try await api.messages(conversationId: conversationId, token: token) }
    }

    /// Creates a conversation (the WebSocket path creates one with the first message instead).
    public func createConversation(title: String? = nil) async throws -> ConversationSummary {
        try await withToken { api, token in try await api.createConversation(title: title, token: token) }
    }

    /// A development token for `user` from a server in development mode (`POST /v1/dev/token`),
    /// as the web page gets one. Production servers do not offer it.
    public static func developmentToken(baseURL: String, user: String, httpClient: HTTPClient = .shared) async throws -> AccessToken {
        let base = MedViewClientConfiguration(baseURL: baseURL).baseURL
        return try await HTTPAPI(client: httpClient, baseURL: base).developmentToken(user: user)
    }

    // MARK: - State

    private func setState(_ new: ConnectionState) {
        guard new != state, !isStoppedState else { return }
        state = new
        logger.debug("medview.client: connection state", metadata: ["connection.state": "\(new)"])
        for observer in observers.values { observer.yield(new) }
        if case .stopped = new {
            for observer in observers.values { observer.finish() }
            observers.removeAll()
        }
    }

    private var isStoppedState: Bool {
        if case .stopped = state { return true }
        return false
    }

    private func removeObserver(_ key: UUID) {
        observers[key] = nil
    }

    private func stop(_ reason: StopReason) {
        guard !stopped else { return }
        stopped = true
        setState(.stopped(reason))
        sleeper?.cancel()
        heartbeatTask?.cancel()
        for task in eventStreamTasks.values { task.cancel() }
        eventStreamTasks.removeAll()
        link?.close()
        for (id, command) in pending {
            pending[id] = nil
            command.settle(.failure(.closed))
        }
        for id in Array(answers.keys) {
            finish(id, with: .failed(AnswerFailure(error: .stopped, partialText: answers[id]?.text ?? "")))
        }
    }

    // MARK: - Tokens

    private var api: HTTPAPI {
        let client: HTTPClient
        if let injectedHTTPClient {
            client = injectedHTTPClient
        } else if let ownHTTPClient {
            client = ownHTTPClient
        } else {
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: .seconds(10), read: .nanoseconds(Int64(self.configuration.eventStreamReadTimeout.components.seconds) * 1_000_000_000))
            configuration.decompression = .disabled
            client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            ownHTTPClient = client
        }
        return HTTPAPI(client: client, baseURL: configuration.baseURL)
    }

    /// A token that is valid for a few more seconds, from the provider if needed.
    private func validToken(_ reason: TokenRequestReason = .connect) async throws(MedViewClientError) -> AccessToken {
        if reason == .connect, let token, (token.expiresAt ?? .distantFuture) > Date().addingTimeInterval(5) {
            return token
        }
        let expired = token.map { ($0.expiresAt ?? .distantFuture) <= Date().addingTimeInterval(5) } ?? false
        do {
            let fresh = try await tokenProvider(reason == .connect && expired ? .renew : reason)
            token = fresh
            tokenObtainedAt = Date()
            return fresh
        } catch {
            throw .tokenUnavailable("the token provider failed (\(type(of: error)))")
        }
    }

    private func withToken<T: Sendable>(_ body: (HTTPAPI, AccessToken) async throws -> T) async throws -> T {
        let api = self.api
        let token = try await validToken()
        do {
            return try await body(api, token)
        } catch MedViewClientError.server(code: .tokenExpired, _, _) {
            return try await body(api, try await validToken(.rejected))
        }
    }

    /// Renews the token a while before it expires and hands it to the open socket.
    private func refreshLoop() async {
        while !stopped, !Task.isCancelled {
            guard let expiresAt = token?.expiresAt else {
                // No token yet (or one without an expiry): look again shortly.
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            let lifetime = max(0, expiresAt.timeIntervalSince(tokenObtainedAt))
            let lead = min(Double(configuration.refreshLeadTime.components.seconds), lifetime / 4)
            let wait = expiresAt.timeIntervalSinceNow - lead
            if wait > 0 {
                try? await Task.sleep(for: .milliseconds(Int(min(wait, 3600) * 1000)))
                continue
            }
            guard let renewed = try? await validToken(.renew) else {
                try? await Task.sleep(for: .seconds(5))
                continue
            }
            guard let link, linkLive else { continue }
            do throws(CommandFailure) {
                _ = try await command(.authRefresh(AuthRefresh(id: nextCommandId("refresh"), token: renewed.value)), on: link)
                stats.tokenRefreshes += 1
            } catch .server(let error) where error.code == .unauthorized {
                link.close()
            } catch {
                // A closed or dead socket reconnects with the new token anyway.
            }
            // Do not renew again before the new token's own lead time.
            if (token?.expiresAt ?? .distantFuture) <= Date().addingTimeInterval(lead) {
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }

    // MARK: - The connection loop

    private enum LinkOutcome {
        case live(WebSocketLink)
        case failed(WebSocketLink.Closure?)
        /// The token provider failed: nothing was tried, so nothing is learnt about the network.
        case noToken
    }

    private func run() async {
        var backoff = configuration.backoff
        var webSocketRetry = configuration.webSocketRetryInterval
        while !stopped {
            switch mode {
            case .webSocket:
                let outcome = await openLink()
                guard !stopped else { return }
                switch outcome {
                case .live(let link):
                    backoff.reset()
                    wsFailures = 0
                    let closure = await stayLive(on: link)
                    guard !stopped else { return }
                    if await afterClose(closure, wasLive: true) == .stop { return }
                case .failed(let closure):
                    if await afterClose(closure, wasLive: false) == .stop { return }
                case .noToken:
                    if state != .offline { setState(.reconnecting) }
                }
                if mode == .serverSentEvents { continue }
                await pause(backoff.next())
            case .serverSentEvents:
                let delay = webSocketRetry * Double.random(in: 0.5..<1)
                webSocketRetry = min(webSocketRetry * 2, .seconds(600))
                await pause(delay)
                guard !stopped else { return }
                if case .live(let link) = await openLink() {
                    webSocketRetry = configuration.webSocketRetryInterval
                    backoff.reset()
                    wsFailures = 0
                    drops = []
                    let closure = await stayLive(on: link)
                    guard !stopped else { return }
                    if await afterClose(closure, wasLive: true) == .stop { return }
                    if mode == .webSocket { await pause(backoff.next()) }
                }
            }
        }
    }

    private enum Next { case goOn, stop }

    /// Decides what follows a closed or failed socket: token renewal, idle logoff, fallback or backoff.
    private func afterClose(_ closure: WebSocketLink.Closure?, wasLive: Bool) async -> Next {
        let code = closure?.code
        if code == 4408 || closure?.lastError == .idleTimeout {
            stop(.idleTimeout)
            return .stop
        }
        if code == 4401 || closure?.lastError == .tokenExpired || closure?.lastError == .unauthorized {
            refusals += 1
            guard refusals < 3 else {
                stop(.unauthorized)
                return .stop
            }
            if mode == .webSocket { setState(.reconnecting) }
            _ = try? await validToken(.rejected)
            return .goOn
        }
        guard mode == .webSocket else { return .goOn }
        // While offline, stay offline until a connection works (no flapping through reconnecting).
        if state != .offline { setState(.reconnecting) }
        guard await api.reachable() else {
            guard !stopped else { return .stop }
            setState(.offline)
            return .goOn
        }
        let now = ContinuousClock.now
        if wasLive {
            drops = drops.filter { now - $0 < configuration.dropWindow } + [now]
        } else if code != 4429 {
            // 4429 (too many connections) says nothing about whether WebSockets work here.
            wsFailures += 1
        }
        if wsFailures >= configuration.webSocketFailuresBeforeFallback || drops.count >= configuration.dropsBeforeFallback {
            enterFallback()
        }
        return .goOn
    }

    /// Opens a socket and waits for its opening `ping` to be acknowledged (which also proves the token was accepted).
    private func openLink() async -> LinkOutcome {
        guard let url = configuration.webSocketURL else {
            logger.info("medview.client: the base URL is not http or https")
            stop(.closed)
            return .failed(nil)
        }
        let token: AccessToken
        do {
            token = try await validToken()
        } catch {
            logger.info("medview.client: no token for the connection", metadata: ["error": "\(error)"])
            return .noToken
        }
        guard !stopped else { return .failed(nil) }
        linkCounter += 1
        stats.webSocketAttempts += 1
        let link = WebSocketLink.open(
            number: linkCounter, url: url, token: token, maxFrameSize: configuration.maxFrameSize, logger: logger,
            onEvent: { [weak self] number, event in await self?.received(event, from: number) },
            onClosed: { [weak self] number, _ in await self?.linkClosed(number) }
        )
        self.link = link
        do {
            _ = try await command(.ping(Ping(id: nextCommandId("open"))), on: link)
            guard !stopped else { return .failed(nil) }
            return .live(link)
        } catch {
            link.close()
            let closure = await link.waitClosed(timeout: .seconds(2))
            if self.link === link { self.link = nil }
            failPending(of: link.number)
            return .failed(closure)
        }
    }

    /// Runs a live socket until it closes, and returns how it closed.
    private func stayLive(on link: WebSocketLink) async -> WebSocketLink.Closure {
        linkLive = true
        mode = .webSocket
        refusals = 0
        stats.webSocketConnections += 1
        setState(.connected(.webSocket))
        for streamId in cancelsToDeliver { deliverCancel(streamId) }
        cancelsToDeliver.removeAll()
        resumeUnfinished()
        pump()
        heartbeatTask?.cancel()
        heartbeatTask = Task { await self.heartbeat(link) }
        let closure = await link.closed()
        heartbeatTask?.cancel()
        linkClosed(link.number)
        return closure
    }

    private func heartbeat(_ link: WebSocketLink) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            guard !Task.isCancelled, self.link === link, linkLive else { return }
            do throws(CommandFailure) {
                _ = try await command(.ping(Ping(id: nextCommandId("ping"))), on: link)
            } catch .timeout {
                link.close()
                return
            } catch {
                return
            }
        }
    }

    private func linkClosed(_ number: Int) {
        guard let link, link.number == number else { return }
        self.link = nil
        linkLive = false
        heartbeatTask?.cancel()
        failPending(of: number)
    }

    private func failPending(of linkNumber: Int) {
        for (id, command) in pending where command.link == linkNumber {
            pending[id] = nil
            command.settle(.failure(.closed))
        }
    }

    private func enterFallback() {
        guard !stopped else { return }
        mode = .serverSentEvents
        stats.fallbacks += 1
        eventStreamBackoff.reset()
        setState(.connected(.serverSentEvents))
        for streamId in cancelsToDeliver { deliverCancel(streamId) }
        cancelsToDeliver.removeAll()
        resumeUnfinished()
        pump()
    }

    /// Sleeps, unless ``reconnectNow()`` or ``close()`` wakes it first.
    private func pause(_ duration: Duration) async {
        let sleeper = Task { _ = try? await Task.sleep(for: duration) }
        self.sleeper = sleeper
        await sleeper.value
        self.sleeper = nil
    }

    // MARK: - Commands

    private func nextCommandId(_ prefix: String) -> String {
        commandCounter += 1
        return "\(prefix)-\(commandCounter)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Sends a command on `link` and waits for its `ack` (or its `error`, a close, or the ack timeout).
    private func command(_ command: ClientCommand, on link: WebSocketLink, kind: PendingCommand.Kind = .other) async throws(CommandFailure) -> Ack {
        let id = command.id
        let number = link.number
        let timeout = configuration.ackTimeout
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Ack, CommandFailure>, Never>) in
            let timer = Task { [weak self] in
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                await self?.expire(id)
            }
            pending[id] = PendingCommand(link: number, kind: kind, continuation: continuation, timer: timer)
            link.send(String(decoding: command.encoded(), as: UTF8.self))
        }
        return try result.get()
    }

    private func expire(_ id: String) {
        pending.removeValue(forKey: id)?.settle(.failure(.timeout))
    }

    // MARK: - Events

    private func received(_ event: ServerEvent, from linkNumber: Int) {
        switch event {
        case .ack(let ack):
            guard let command = pending.removeValue(forKey: ack.id) else { return }
            if case .chatSend(let messageId) = command.kind, let streamId = ack.streamId {
                attach(messageId, to: streamId)
            }
            command.settle(.success(ack))
        case .error(let error) where error.seq == nil:
            if let id = error.id, let command = pending.removeValue(forKey: id) {
                command.settle(.failure(.server(error)))
            }
        default:
            deliver(event)
        }
    }

    /// Links a message's answer to its server stream (from an `ack`, `X-Stream-Id` or `stream.start`).
    private func attach(_ messageId: String, to streamId: String) {
        if streams[streamId] == nil { streams[streamId] = StreamRecord(messageId: messageId) }
        answers[messageId]?.streamId = streamId
        if cancelWhenKnown.remove(messageId) != nil { deliverCancel(streamId) }
    }

    /// One stream event from either transport: delivered once, in `seq` order; repeats are dropped.
    private func deliver(_ event: ServerEvent) {
        guard let streamId = event.streamId, let seq = event.seq, var record = streams[streamId], !record.done else { return }
        guard seq > record.lastSeq else {
            stats.duplicatesDropped += 1
            return
        }
        record.lastSeq = seq
        let id = record.messageId
        switch event {
        case .streamStart(let start):
            if let item = outbox.items.first(where: { $0.id == id }) { outbox.learn(item.target, is: start.conversationId) }
            answers[id]?.yield(.started(AnswerStart(streamId: start.streamId, conversationId: start.conversationId, userMessageId: start.userMessageId, messageId: start.messageId, model: start.model)))
        case .streamChunk(let chunk):
            answers[id]?.text += chunk.text
            answers[id]?.yield(.text(chunk.text))
        case .safetyAlert(let alert):
            answers[id]?.yield(.safetyAlert(alert))
        case .safetyWarning(let warning):
            answers[id]?.yield(.safetyWarning(warning))
        case .streamEnd(let end):
            record.done = true
            finish(id, with: .ended(AnswerEnd(finishReason: end.finishReason, usage: end.usage, text: answers[id]?.text ?? "")))
        case .error(let error):
            record.done = true
            finish(id, with: .failed(AnswerFailure(error: MedViewClientError(error), partialText: answers[id]?.text ?? "")))
        case .ack:
            break
        }
        // A finished stream is forgotten: its late or repeated events then find no record and are dropped.
        streams[streamId] = record.done ? nil : record
    }

    private func finish(_ messageId: String, with outcome: AnswerOutcome) {
        guard let sink = answers.removeValue(forKey: messageId) else { return }
        switch outcome {
        case .ended(let end): sink.yield(.ended(end))
        case .failed(let failure): sink.yield(.failed(failure))
        }
        sink.finish()
        cancelWhenKnown.remove(messageId)
    }

    private func lost(_ streamId: String, _ error: MedViewClientError) {
        guard let record = streams.removeValue(forKey: streamId), !record.done else { return }
        finish(record.messageId, with: .failed(AnswerFailure(error: error, partialText: answers[record.messageId]?.text ?? "")))
    }

    // MARK: - Sending

    /// Sends the first queued message, unless one is in flight or no transport can carry it now.
    private func pump() {
        guard !stopped, inFlight == nil, let item = outbox.first else { return }
        switch mode {
        case .webSocket:
            guard let link, linkLive, !retryScheduled else { return }
            inFlight = item.id
            Task { await self.sendOverWebSocket(item, on: link) }
        case .serverSentEvents:
            guard !retryScheduled else { return }
            inFlight = item.id
            spawnEventStreamTask { await self.sendOverEventStream(item) }
        }
    }

    private func sendOverWebSocket(_ item: OutboxItem, on link: WebSocketLink) async {
        stats.messagesSent += 1
        tries[item.id, default: 0] += 1
        let send = ChatSend(id: item.id, conversationId: outbox.conversationId(for: item.target), text: item.text)
        do throws(CommandFailure) {
            let ack = try await command(.chatSend(send), on: link, kind: .chatSend(messageId: item.id))
            accepted(item, ack)
        } catch .server(let error) {
            refused(item, MedViewClientError(error), retryAfter: error.retryAfter)
        } catch .timeout {
            inFlight = nil
            link.close()
        } catch {
            // Closed: the message stays first in line and goes again, same id, once connected.
            inFlight = nil
        }
    }

    /// The server stored the message: it leaves the queue, and the next one may go.
    private func accepted(_ item: OutboxItem, _ ack: Ack) {
        if let conversationId = ack.conversationId { outbox.learn(item.target, is: conversationId) }
        outbox.remove(item.id)
        tries[item.id] = nil
        if inFlight == item.id { inFlight = nil }
        pump()
    }

    /// The server refused the message: retry it later (same id), or give up on it for good.
    private func refused(_ item: OutboxItem, _ error: MedViewClientError, retryAfter: Int?) {
        if inFlight == item.id { inFlight = nil }
        guard case .server(let code, _, let retryable) = error else { return }
        if code == .tokenExpired {
            Task { _ = try? await self.validToken(.rejected); self.pump() }
            return
        }
        if retryable || [.tooManyStreams, .rateLimited, .storageUnavailable, .shuttingDown, .internalError].contains(code) {
            let attempt = tries[item.id] ?? 1
            let delay: Duration = if let retryAfter, retryAfter > 0 { .seconds(retryAfter) } else { min(.seconds(15), .seconds(1) * (1 << min(attempt, 4))) }
            retryScheduled = true
            Task {
                try? await Task.sleep(for: delay)
                self.retryScheduled = false
                self.pump()
            }
            return
        }
        outbox.remove(item.id)
        tries[item.id] = nil
        finish(item.id, with: .failed(AnswerFailure(error: error, partialText: "")))
        pump()
    }

    // MARK: - Server-Sent Events

    private func spawnEventStreamTask(_ body: @escaping @Sendable () async -> Void) {
        eventStreamTaskCounter += 1
        let key = eventStreamTaskCounter
        eventStreamTasks[key] = Task {
            await body()
            self.eventStreamTasks[key] = nil
        }
    }

    private func sendOverEventStream(_ item: OutboxItem) async {
        stats.messagesSent += 1
        tries[item.id, default: 0] += 1
        var streamId: String?
        var acked = false
        do {
            let api = self.api
            let token = try await validToken()
            var conversationId = outbox.conversationId(for: item.target)
            if conversationId == nil {
                let created = try await api.createConversation(title: Self.title(from: item.text), token: token)
                outbox.learn(item.target, is: created.id)
                conversationId = outbox.conversationId(for: item.target) ?? created.id
            }
            let deadline = NIODeadline.now() + .hours(2)
            let response = try await api.postMessage(conversationId: conversationId ?? "", id: item.id, text: item.text, token: token, deadline: deadline)
            streamId = response.streamId
            if let streamId {
                attach(item.id, to: streamId)
                streams[streamId]?.readingOverEventStream = true
            }
            try await read(response.body) { event in
                if case .ack(let ack) = event, ack.id == item.id {
                    acked = true
                    if let id = ack.streamId {
                        streamId = id
                        self.attach(item.id, to: id)
                        self.streams[id]?.readingOverEventStream = true
                    }
                    self.accepted(item, ack)
                } else {
                    self.deliver(event)
                }
            }
        } catch let error as MedViewClientError {
            if let streamId { streams[streamId]?.readingOverEventStream = false }
            if case .server = error, !acked {
                refused(item, error, retryAfter: nil)
                return
            }
        } catch {
            // A network failure: handled below.
        }
        if let streamId { streams[streamId]?.readingOverEventStream = false }
        if !acked {
            if inFlight == item.id { inFlight = nil }
            eventStreamTrouble()
        } else if let streamId, streams[streamId]?.done == false {
            // The response ended early: pick up where it stopped.
            resume(streamId)
        }
    }

    /// Reads an event stream body, handing each event to `handle` on this actor.
    private func read(_ body: HTTPClientResponse.Body, _ handle: (ServerEvent) -> Void) async throws {
        var parser = EventStreamParser()
        for try await buffer in body {
            for data in try parser.feed(buffer.readableBytesView) {
                guard let event = try? EventDecoding.decode(data) else {
                    logger.debug("medview.client: dropped an unreadable SSE event")
                    continue
                }
                handle(event)
            }
        }
    }

    /// An SSE request failed at the network level: find out whether the server is there, wait, retry.
    private func eventStreamTrouble() {
        guard !stopped else { return }
        guard mode == .serverSentEvents else {
            // The WebSocket took over while this response was read: it carries the rest.
            resumeUnfinished()
            pump()
            return
        }
        guard !retryScheduled else { return }
        retryScheduled = true
        Task {
            let reachable = await self.api.reachable()
            self.noteReachability(reachable)
            try? await Task.sleep(for: self.eventStreamBackoff.next())
            self.retryScheduled = false
            self.resumeUnfinished()
            self.pump()
        }
    }

    private func noteReachability(_ reachable: Bool) {
        guard mode == .serverSentEvents else { return }
        if reachable {
            setState(.connected(.serverSentEvents))
        } else {
            setState(.offline)
        }
    }

    private func resumeEventStream(_ streamId: String) async {
        guard var record = streams[streamId], !record.done, !record.readingOverEventStream else { return }
        record.readingOverEventStream = true
        streams[streamId] = record
        stats.resumes += 1
        do {
            let token = try await validToken()
            let response = try await api.resume(streamId: streamId, after: record.lastSeq, token: token, deadline: .now() + .hours(2))
            try await read(response.body) { event in self.deliver(event) }
            streams[streamId]?.readingOverEventStream = false
            if streams[streamId]?.done == false { eventStreamTrouble() }
        } catch MedViewClientError.server(code: .notFound, _, _) {
            streams[streamId]?.readingOverEventStream = false
            lost(streamId, .streamLost)
        } catch {
            streams[streamId]?.readingOverEventStream = false
            eventStreamTrouble()
        }
    }

    // MARK: - Resume and cancel

    private func resumeUnfinished() {
        for (streamId, record) in streams where !record.done && !record.readingOverEventStream {
            resume(streamId)
        }
    }

    /// Resumes an unfinished answer from its last `seq`, on the transport in use.
    private func resume(_ streamId: String) {
        guard let record = streams[streamId], !record.done, !stopped else { return }
        switch mode {
        case .webSocket:
            guard let link, linkLive else { return }
            stats.resumes += 1
            let resume = StreamResume(id: nextCommandId("resume"), streamId: streamId, after: record.lastSeq)
            Task {
                do throws(CommandFailure) {
                    _ = try await self.command(.streamResume(resume), on: link)
                } catch .server(let error) where error.code == .notFound {
                    self.lost(streamId, .streamLost)
                } catch .server(let error) where error.retryable {
                    try? await Task.sleep(for: .seconds(2))
                    self.resume(streamId)
                } catch .timeout {
                    link.close()
                } catch {
                    // Closed: resumed again once connected.
                }
            }
        case .serverSentEvents:
            guard !record.readingOverEventStream, !retryScheduled else { return }
            spawnEventStreamTask { await self.resumeEventStream(streamId) }
        }
    }

    private func deliverCancel(_ streamId: String) {
        if mode == .webSocket, let link, linkLive {
            let cancel = StreamCancel(id: nextCommandId("cancel"), streamId: streamId)
            Task {
                do throws(CommandFailure) {
                    _ = try await self.command(.streamCancel(cancel), on: link)
                } catch .closed {
                    self.cancelsToDeliver.insert(streamId)
                } catch .timeout {
                    self.cancelsToDeliver.insert(streamId)
                } catch {
                    // not_found: the stream is gone; nothing to cancel.
                }
            }
            return
        }
        Task {
            do {
                let token = try await self.validToken()
                try await self.api.cancel(streamId: streamId, token: token)
            } catch MedViewClientError.server {
                // The server answered: nothing more to do.
            } catch {
                self.cancelsToDeliver.insert(streamId)
            }
        }
    }

    /// A conversation title like the server's: whitespace collapsed, at most 60 characters.
    static func title(from text: String) -> String {
        let collapsed = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return collapsed.count <= 60 ? collapsed : String(collapsed.prefix(59)) + "…"
    }
}

/// Why a WebSocket command did not get its `ack`.
enum CommandFailure: Error {
    /// The server answered with an `error` carrying the command's id.
    case server(ErrorEvent)
    /// The socket closed first.
    case closed
    /// No answer within the ack timeout: the socket is presumed dead.
    case timeout
}

/// A command waiting for its `ack`.
struct PendingCommand {
    enum Kind: Sendable {
        case other
        /// A `chat.send`: its ack links the message to its stream before any stream event is read.
        case chatSend(messageId: String)
    }

    let link: Int
    let kind: Kind
    let continuation: CheckedContinuation<Result<Ack, CommandFailure>, Never>
    let timer: Task<Void, Never>

    func settle(_ result: Result<Ack, CommandFailure>) {
        timer.cancel()
        continuation.resume(returning: result)
    }
}

/// What the client knows of one server stream.
struct StreamRecord: Sendable {
    /// The message (or follow key) whose answer the stream is.
    var messageId: String
    /// The highest `seq` delivered.
    var lastSeq = 0
    /// The terminal event was delivered.
    var done = false
    /// An SSE response is reading this stream right now (so it is not resumed twice).
    var readingOverEventStream = false
}

/// The app-facing end of one answer.
struct AnswerSink: Sendable {
    let answer: Answer
    private let continuation: AsyncStream<AnswerEvent>.Continuation
    var text = ""
    var streamId: String?

    init(messageId: String) {
        let (stream, continuation) = AsyncStream<AnswerEvent>.makeStream()
        self.answer = Answer(messageId: messageId, events: stream)
        self.continuation = continuation
    }

    func yield(_ event: AnswerEvent) {
        continuation.yield(event)
    }

    func finish() {
        continuation.finish()
    }
}
