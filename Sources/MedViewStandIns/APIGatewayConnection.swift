import Foundation
import NIOCore
import Synchronization

/// One client connection of the stand-in's WebSocket API: what the Management API reports about it
/// and the frames queued for it.
///
/// Invariants: at most ``sendBufferLimit`` bytes are queued at once (a post over it is refused,
/// as API Gateway answers 429 when the client side buffer is full); once closed, nothing more is
/// queued (a post gets 410).
final class APIGatewayConnection: Sendable {
    /// What the writer sends.
    enum Outgoing: Sendable {
        case text(String)
        case binary(ByteBuffer)
        case close(code: UInt16, reason: String)
    }

    /// Why a post was not queued.
    enum SendRefusal: Error {
        case gone
        case bufferFull
    }

    let id: String
    let connectedAt: Date
    let sourceIP: String
    let userAgent: String?
    let sendBufferLimit: Int
    let outgoing: AsyncStream<Outgoing>
    private let continuation: AsyncStream<Outgoing>.Continuation

    private struct State {
        var lastActiveAt: Date
        var queuedBytes = 0
        var closed = false
        var closeCode: UInt16?
        var closeReason = ""
    }

    private let state: Mutex<State>

    /// A connection being served; `connectedAt` is when the handshake was accepted (what the
    /// Management API reports).
    ///
    /// The idle clock starts now, when serving starts, not at the handshake's time: on a loaded
    /// machine the two can be far apart, and an idle close sent right behind the 101 meets a
    /// client bug (below).
    ///
    /// The client bug: HummingbirdWSClient (swift-websocket over NIO's typed client upgrade)
    /// can lose a close frame, and the FIN a Hummingbird server sends right behind it, that
    /// arrive while the client is still completing the upgrade; that client then waits forever.
    /// Seen 13 times in 40 connections closed 1 ms after the upgrade (packet capture: close frame
    /// and FIN on the wire, no answer). The MedView client is not stuck by it: it opens with a
    /// `ping` that must be acknowledged in time.
    init(id: String, sourceIP: String, userAgent: String?, sendBufferLimit: Int, connectedAt: Date = Date()) {
        self.id = id
        self.connectedAt = connectedAt
        self.sourceIP = sourceIP
        self.userAgent = userAgent
        self.sendBufferLimit = sendBufferLimit
        self.state = Mutex(State(lastActiveAt: Date()))
        (outgoing, continuation) = AsyncStream.makeStream(of: Outgoing.self)
    }

    /// The last time the client sent a message (or connected).
    var lastActiveAt: Date { state.withLock { $0.lastActiveAt } }

    /// The client sent a message.
    func touch(now: Date = Date()) {
        state.withLock { $0.lastActiveAt = now }
    }

    /// Queues one message (a text frame when the bytes are UTF-8, else a binary frame).
    func send(_ bytes: [UInt8]) throws(SendRefusal) {
        let refusal = state.withLock { state -> SendRefusal? in
            if state.closed { return .gone }
            if state.queuedBytes + bytes.count > sendBufferLimit { return .bufferFull }
            state.queuedBytes += bytes.count
            return nil
        }
        if let refusal { throw refusal }
        if let text = String(validating: bytes, as: UTF8.self) {
            continuation.yield(.text(text))
        } else {
            continuation.yield(.binary(ByteBuffer(bytes: bytes)))
        }
    }

    /// The writer delivered `count` bytes of a queued message.
    func delivered(_ count: Int) {
        state.withLock { $0.queuedBytes = max(0, $0.queuedBytes - count) }
    }

    /// Closes from the server side (Management API `DELETE`, idle timeout, oversize message):
    /// later posts get 410 and the close frame follows what is queued.
    /// - Returns: false when it was closed already.
    @discardableResult
    func close(code: UInt16, reason: String) -> Bool {
        let first = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.closed = true
            state.closeCode = code
            state.closeReason = reason
            return true
        }
        if first {
            continuation.yield(.close(code: code, reason: reason))
            continuation.finish()
        }
        return first
    }

    /// The connection ended (client close or after a server close): later posts get 410.
    /// - Returns: the close code and reason for the `$disconnect` event.
    func ended(clientCode: UInt16 = 1005) -> (code: UInt16, reason: String) {
        let result = state.withLock { state -> (UInt16, String) in
            if !state.closed {
                state.closed = true
                state.closeCode = clientCode
            }
            return (state.closeCode ?? clientCode, state.closeReason)
        }
        continuation.finish()
        return result
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// 16 characters of base64 ending in `=`, like API Gateway's ids (`R1kmxc2VNjMCFIA=`), so
    /// that clients meet the `=` their signing must encode twice.
    /// (Letters and digits only before the `=`: a `/` would split the Management API's path.)
    static func makeID() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<15).map { _ in alphabet.randomElement()! }) + "="
    }
}
