import HummingbirdWSClient
import Logging
import MedViewProtocol
import NIOCore
import NIOWebSocket
import Synchronization

/// One WebSocket connection to `/v1/ws`: opened with the bearer token in the `Authorization`
/// header, text frames out, decoded events in. What to do when it closes is the owner's business
/// (``MedViewClient``); the link only reports it, once.
final class WebSocketLink: Sendable {
    /// How the link ended.
    struct Closure: Sendable, Equatable {
        /// The close code the server sent, if any (4401, 4408, 4429, 1000, …).
        var code: UInt16?
        /// The code of a connection-level `error` event received just before (`token_expired`, `idle_timeout`, …).
        var lastError: ErrorCode?
        /// Whether the socket ever opened (the upgrade succeeded).
        var opened: Bool
    }

    private enum Outgoing: Sendable {
        case text(String)
        case close
    }

    /// Sequence number among the owner's links, so late callbacks from an old link are recognised.
    let number: Int
    private let outgoing: AsyncStream<Outgoing>.Continuation
    private let closure = Mutex<(result: Closure?, waiters: [CheckedContinuation<Closure, Never>])>((nil, []))

    private init(number: Int, outgoing: AsyncStream<Outgoing>.Continuation) {
        self.number = number
        self.outgoing = outgoing
    }

    /// Opens a link. `onEvent` receives every decoded event in order (awaited one at a time);
    /// `onClosed` is called once when the link is over, however it ended.
    static func open(
        number: Int,
        url: String,
        token: AccessToken,
        maxFrameSize: Int,
        logger: Logger,
        onEvent: @escaping @Sendable (Int, ServerEvent) async -> Void,
        onClosed: @escaping @Sendable (Int, Closure) async -> Void
    ) -> WebSocketLink {
        let (stream, continuation) = AsyncStream<Outgoing>.makeStream()
        let link = WebSocketLink(number: number, outgoing: continuation)
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders[.authorization] = "Bearer \(token.value)"
        configuration.maxFrameSize = maxFrameSize
        configuration.closeTimeout = .seconds(2)
        Task {
            let state = Mutex<(opened: Bool, lastError: ErrorCode?)>((false, nil))
            var code: UInt16?
            do {
                let frame = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    state.withLock { $0.opened = true }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await item in stream {
                                switch item {
                                case .text(let text): try await outbound.write(.text(text))
                                case .close:
                                    try await outbound.close(.normalClosure, reason: nil)
                                    return
                                }
                            }
                        }
                        for try await message in inbound.messages(maxSize: maxFrameSize) {
                            guard case .text(let text) = message else { continue }
                            let event: ServerEvent
                            do {
                                event = try EventDecoding.decode(text)
                            } catch {
                                logger.debug("medview.client: dropped an unreadable WebSocket event")
                                continue
                            }
                            if case .error(let e) = event, e.id == nil, e.seq == nil {
                                state.withLock { $0.lastError = e.code }
                            }
                            await onEvent(number, event)
                        }
                        group.cancelAll()
                    }
                }
                code = frame.map { Self.closeCode($0.closeCode) }
            } catch {
                logger.debug("medview.client: WebSocket ended", metadata: ["error.type": "\(type(of: error))"])
            }
            continuation.finish()
            let result = state.withLock { Closure(code: code, lastError: $0.lastError, opened: $0.opened) }
            link.finish(result)
            await onClosed(number, result)
        }
        return link
    }

    /// Queues a text frame (sent once the socket is open; dropped if it never opens).
    func send(_ text: String) {
        outgoing.yield(.text(text))
    }

    /// Starts a normal close; ``waitClosed(timeout:)`` tells when it is over.
    func close() {
        outgoing.yield(.close)
        outgoing.finish()
    }

    /// Waits until the link is over, at most `timeout` (a black-holed upgrade never ends: then nil).
    func waitClosed(timeout: Duration) async -> Closure? {
        await withTaskGroup(of: Closure?.self) { group in
            group.addTask { await self.closed() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if first == nil { self.finishWaiters() }
            return first
        }
    }

    /// Waits until the link is over.
    func closed() async -> Closure {
        await withCheckedContinuation { (continuation: CheckedContinuation<Closure, Never>) in
            let done = closure.withLock { state -> Closure? in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    private func finish(_ result: Closure) {
        let waiters = closure.withLock { state -> [CheckedContinuation<Closure, Never>] in
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    /// Releases anyone still waiting on a link that is being abandoned.
    private func finishWaiters() {
        let abandoned = Closure(code: nil, lastError: nil, opened: false)
        let waiters = closure.withLock { state -> [CheckedContinuation<Closure, Never>] in
            if state.result == nil { state.result = abandoned }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: abandoned) }
    }

    private static func closeCode(_ code: WebSocketErrorCode) -> UInt16 {
        switch code {
        case .normalClosure: 1000
        case .goingAway: 1001
        case .protocolError: 1002
        case .unacceptableData: 1003
        case .dataInconsistentWithMessage: 1007
        case .policyViolation: 1008
        case .messageTooLarge: 1009
        case .missingExtension: 1010
        case .unexpectedServerError: 1011
        case .unknown(let value): value
        }
    }
}
