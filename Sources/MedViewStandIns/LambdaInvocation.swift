import Foundation
import NIOCore
import Synchronization

/// An error a Lambda invocation ended with, as Lambda reports it (`errorType`, `errorMessage`).
///
/// Its description carries the type only: the message may hold text from the function.
public struct LambdaFunctionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `Task.TimedOut`, `Runtime.TruncatedResponse`, or what the runtime reported.
    public var errorType: String
    /// The message (from the runtime, or the stand-in's own).
    public var errorMessage: String

    public init(errorType: String, errorMessage: String) {
        self.errorType = errorType
        self.errorMessage = errorMessage
    }

    /// The invocation ran past its deadline.
    public static func timedOut(after timeout: Duration) -> LambdaFunctionError {
        LambdaFunctionError(errorType: "Task.TimedOut", errorMessage: "Task timed out after \(timeout.components.seconds) seconds")
    }

    /// The runtime's connection ended in the middle of a streamed response.
    public static let truncated = LambdaFunctionError(errorType: "Runtime.TruncatedResponse", errorMessage: "The runtime's response ended before it was complete.")

    /// The buffered response was larger than Lambda's 6 MB.
    public static let responseTooLarge = LambdaFunctionError(errorType: "Function.ResponseSizeTooLarge", errorMessage: "Response payload size exceeded maximum allowed payload size (6291556 bytes).")

    /// The stand-in stopped before the invocation finished.
    public static let shutDown = LambdaFunctionError(errorType: "Runtime.ShutDown", errorMessage: "The stand-in stopped.")

    public var description: String { "LambdaFunctionError(\(errorType))" }

    /// `{"errorMessage":…,"errorType":…}`, the body Lambda uses.
    var json: [UInt8] {
        let object = ["errorMessage": errorMessage, "errorType": errorType]
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }
}

/// What a function answered: the response's mode and content type, then its body as it arrives.
///
/// The body ends with a ``LambdaFunctionError`` when the function failed after its first byte
/// (the error trailers of a streamed response, a timeout, a cut connection).
public struct LambdaInvocationReply: Sendable {
    /// How the runtime posted its response.
    public enum Mode: Sendable, Equatable {
        /// One body with a length (or chunked without `Lambda-Runtime-Function-Response-Mode`).
        case buffered
        /// `Lambda-Runtime-Function-Response-Mode: streaming`: chunks as the function writes them.
        case streaming
    }

    public var mode: Mode
    /// The `Content-Type` the runtime posted (`application/vnd.awslambda.http-integration-response`
    /// for a function URL's prelude).
    public var contentType: String?
    /// The body, chunk by chunk.
    public var body: AsyncThrowingStream<ByteBuffer, any Error>

    /// The whole body, refusing more than `limit` bytes.
    public func collect(upTo limit: Int = 6 * 1024 * 1024) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in body {
            guard bytes.count + chunk.readableBytes <= limit else { throw LambdaFunctionError.responseTooLarge }
            bytes += chunk.readableBytesView
        }
        return bytes
    }
}

/// One invocation of a function: queued, then given to one execution environment, then answered
/// once (a response or an error), or failed at its deadline.
///
/// Invariant: the reply head is delivered at most once and the body finished at most once; every
/// post after the invocation finished is refused (``Refusal/invalidState``).
final class LambdaInvocation: Sendable {
    /// Why the Runtime API refuses a post for this invocation.
    enum Refusal: Error, Equatable {
        /// Answered already, failed at its deadline, or still queued.
        case invalidState
    }

    enum Phase {
        case queued
        case running(deadline: ContinuousClock.Instant)
        case responding
        case finished
    }

    let requestID: String
    let payload: [UInt8]
    let traceID: String
    let timeout: Duration
    private let phase = Mutex(Phase.queued)
    private let head: AsyncThrowingStream<LambdaInvocationReply, any Error>.Continuation
    private let headStream: AsyncThrowingStream<LambdaInvocationReply, any Error>
    private let body: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    private let bodyStream: AsyncThrowingStream<ByteBuffer, any Error>
    private let deadlineTask = Mutex<Task<Void, Never>?>(nil)

    init(payload: [UInt8], timeout: Duration) {
        self.requestID = UUID().uuidString.lowercased()
        self.payload = payload
        self.timeout = timeout
        self.traceID = Self.makeTraceID()
        (headStream, head) = AsyncThrowingStream.makeStream(of: LambdaInvocationReply.self)
        (bodyStream, body) = AsyncThrowingStream.makeStream(of: ByteBuffer.self)
    }

    /// Whether the invocation ended (answered, failed, timed out).
    var isFinished: Bool {
        phase.withLock { phase in
            if case .finished = phase { return true }
            return false
        }
    }

    /// Waits for the function's answer: the reply (whose body may still be arriving), or the
    /// error it failed with before its first byte.
    func reply() async throws -> LambdaInvocationReply {
        for try await reply in headStream { return reply }
        throw LambdaFunctionError.shutDown
    }

    /// Hands the invocation to an execution environment; the deadline starts now.
    /// - Returns: the deadline in Unix milliseconds, or nil if it was no longer queued.
    func dispatch() -> Int64? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let dispatched = phase.withLock { phase -> Bool in
            guard case .queued = phase else { return false }
            phase = .running(deadline: deadline)
            return true
        }
        guard dispatched else { return nil }
        let timeout = self.timeout
        let task = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            guard !Task.isCancelled else { return }
            self?.fail(.timedOut(after: timeout))
        }
        deadlineTask.withLock { $0 = task }
        let (seconds, attoseconds) = timeout.components
        return Int64(Date().timeIntervalSince1970 * 1000) + seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Puts a dispatched invocation back in the queue state (its `next` answer could not be sent).
    func undispatch() {
        phase.withLock { phase in
            if case .running = phase { phase = .queued }
        }
        deadlineTask.withLock { $0?.cancel(); $0 = nil }
    }

    /// The response starts (`/response`).
    func beginResponse(mode: LambdaInvocationReply.Mode, contentType: String?) throws(Refusal) {
        let began = phase.withLock { phase -> Bool in
            guard case .running = phase else { return false }
            phase = .responding
            return true
        }
        guard began else { throw .invalidState }
        head.yield(LambdaInvocationReply(mode: mode, contentType: contentType, body: bodyStream))
        head.finish()
    }

    /// A piece of the response body; dropped once the invocation finished (timed out).
    func write(_ chunk: ByteBuffer) {
        let open = phase.withLock { phase -> Bool in
            if case .responding = phase { return true }
            return false
        }
        if open { body.yield(chunk) }
    }

    /// The response ended: completely (`error` nil) or with the error of the trailers.
    func finishResponse(error: LambdaFunctionError?) throws(Refusal) {
        let finished = phase.withLock { phase -> Bool in
            guard case .responding = phase else { return false }
            phase = .finished
            return true
        }
        guard finished else { throw .invalidState }
        deadlineTask.withLock { $0?.cancel(); $0 = nil }
        body.finish(throwing: error)
    }

    /// The function failed before its first byte (`/error`), or the deadline, init error or
    /// shutdown ended it. A response in progress ends with `error`.
    @discardableResult
    func fail(_ error: LambdaFunctionError, onlyBeforeResponse: Bool = false) -> Bool {
        let previous = phase.withLock { phase -> Phase? in
            switch phase {
            case .finished: return nil
            case .responding where onlyBeforeResponse: return nil
            default:
                let previous = phase
                phase = .finished
                return previous
            }
        }
        guard let previous else { return false }
        deadlineTask.withLock { $0?.cancel(); $0 = nil }
        if case .responding = previous {
            body.finish(throwing: error)
        } else {
            head.finish(throwing: error)
            body.finish()
        }
        return true
    }

    /// `Root=1-<8 hex epoch seconds>-<24 hex>;Parent=<16 hex>;Sampled=0`, X-Ray's form.
    static func makeTraceID() -> String {
        func hex(_ count: Int) -> String {
            String((0..<count).map { _ in "0123456789abcdef".randomElement()! })
        }
        let epoch = String(UInt32(Date().timeIntervalSince1970), radix: 16)
        return "Root=1-\(epoch)-\(hex(24));Parent=\(hex(16));Sampled=0"
    }
}
