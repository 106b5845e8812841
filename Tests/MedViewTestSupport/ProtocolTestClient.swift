import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import MedViewProtocol
import NIOWebSocket
import Synchronization

// The project's protocol as a client speaks it, shared by the tests of every shape that serves
// it (`medview serve`, the Lambda function behind API Gateway).

/// A test waited longer than it allows.
public struct TestTimeout: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A WebSocket client for tests: send commands or raw frames, read decoded events with a timeout.
public final class WSTestClient: Sendable {
    public enum Incoming: Sendable {
        case event(ServerEvent)
        case closed(WebSocketCloseFrame?)
    }

    enum Outgoing: Sendable {
        case frame(WebSocketOutboundWriter.OutboundFrame)
        case close
    }

    private let mailbox = Mutex<[Incoming]>([])
    private let outgoing: AsyncStream<Outgoing>.Continuation

    private init(outgoing: AsyncStream<Outgoing>.Continuation) {
        self.outgoing = outgoing
    }

    public static func connect(url: String, headers: HTTPFields) async throws -> WSTestClient {
        let (outgoingStream, outCont) = AsyncStream<Outgoing>.makeStream()
        let client = WSTestClient(outgoing: outCont)
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders = headers
        configuration.maxFrameSize = 1 << 21
        var logger = Logger(label: "ws-test-client")
        logger.logLevel = .critical
        Task {
            do {
                let close = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await item in outgoingStream {
                                switch item {
                                case .frame(let frame): try await outbound.write(frame)
                                case .close:
                                    try await outbound.close(.normalClosure, reason: nil)
                                    return
                                }
                            }
                        }
                        for try await message in inbound.messages(maxSize: 1 << 21) {
                            if case .text(let text) = message, let event = try? ServerEvent.decode(text) {
                                client.mailbox.withLock { $0.append(.event(event)) }
                            }
                        }
                        group.cancelAll()
                    }
                }
                client.mailbox.withLock { $0.append(.closed(close)) }
            } catch {
                client.mailbox.withLock { $0.append(.closed(nil)) }
            }
        }
        return client
    }

    public func send(_ command: ClientCommand) {
        outgoing.yield(.frame(.text(String(decoding: command.encoded(), as: UTF8.self))))
    }

    public func sendText(_ text: String) {
        outgoing.yield(.frame(.text(text)))
    }

    public func sendFrame(_ frame: WebSocketOutboundWriter.OutboundFrame) {
        outgoing.yield(.frame(frame))
    }

    public func close() {
        outgoing.yield(.close)
        outgoing.finish()
    }

    /// The next incoming item, or a timeout error.
    public func nextItem(timeout: Duration = .seconds(30)) async throws -> Incoming {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let item = mailbox.withLock { box -> Incoming? in
                guard let first = box.first else { return nil }
                if case .closed = first { return first }
                box.removeFirst()
                return first
            }
            if let item { return item }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestTimeout(description: "no WebSocket event within \(timeout)")
    }

    /// The next event; fails if the connection closed or nothing came in time.
    public func next(timeout: Duration = .seconds(30)) async throws -> ServerEvent {
        switch try await nextItem(timeout: timeout) {
        case .event(let e): return e
        case .closed: throw TestTimeout(description: "connection closed while waiting for an event")
        }
    }

    /// Reads events until the terminal event of `streamId` (inclusive).
    public func readStream(_ streamId: String, timeout: Duration = .seconds(20)) async throws -> [ServerEvent] {
        var events: [ServerEvent] = []
        while true {
            let e = try await next(timeout: timeout)
            guard e.streamId == streamId, e.seq != nil else { continue }
            events.append(e)
            if e.isTerminal { return events }
        }
    }

    /// Reads events until the terminal event of `streamId` (inclusive), sending `stream.cancel`
    /// (command id `cancelId`) once `chunkCount` chunks of it have arrived.
    public func readStream(_ streamId: String, cancellingAfter chunkCount: Int, cancelId: String = "c1", timeout: Duration = .seconds(20)) async throws -> [ServerEvent] {
        var events: [ServerEvent] = []
        var cancelled = false
        while true {
            let e = try await next(timeout: timeout)
            guard e.streamId == streamId, e.seq != nil else { continue }
            events.append(e)
            if !cancelled, chunks(events).count == chunkCount {
                send(.streamCancel(StreamCancel(id: cancelId, streamId: streamId)))
                cancelled = true
            }
            if e.isTerminal { return events }
        }
    }
}

public func chunks(_ events: [ServerEvent]) -> [StreamChunk] {
    events.compactMap { if case .streamChunk(let c) = $0 { c } else { nil } }
}

public func ack(_ event: ServerEvent) -> Ack? {
    if case .ack(let a) = event { return a }
    return nil
}

public func errorEvent(_ event: ServerEvent) -> ErrorEvent? {
    if case .error(let e) = event { return e }
    return nil
}

/// Parses an SSE body into events, keeping the `id:` of each.
public func parseSSE(_ body: String) -> [(id: String?, event: ServerEvent)] {
    var result: [(String?, ServerEvent)] = []
    for block in body.components(separatedBy: "\n\n") {
        var id: String?
        var data = ""
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix(":") { continue }
            if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
            if line.hasPrefix("data: ") { data += line.dropFirst(6) }
        }
        if !data.isEmpty, let event = try? ServerEvent.decode(data) { result.append((id, event)) }
    }
    return result
}
