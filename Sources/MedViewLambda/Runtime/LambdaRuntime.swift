import Foundation
import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a handler answers one invocation: a whole (buffered) reply, or a stream.
public struct LambdaResponder: Sendable {
    let client: LambdaRuntimeClient
    let requestId: String
    private let answered: AnsweredFlag

    init(client: LambdaRuntimeClient, requestId: String) {
        self.client = client
        self.requestId = requestId
        self.answered = AnsweredFlag()
    }

    /// Whether the handler has started its reply.
    var hasAnswered: Bool { answered.value }

    /// Sends the whole reply.
    public func send(_ body: ByteBuffer, contentType: String = "application/json") async throws(LambdaRuntimeError) {
        answered.set()
        try await client.respond(requestId: requestId, body: body, contentType: contentType)
    }

    /// Streams the reply (see ``LambdaRuntimeClient/streamResponse(requestId:contentType:_:)``).
    @discardableResult
    public func stream(contentType: String, _ produce: (LambdaResponseWriter) async throws -> Void) async throws(LambdaRuntimeError) -> (any Error)? {
        answered.set()
        return try await client.streamResponse(requestId: requestId, contentType: contentType, produce)
    }
}

/// A flag set once.
final class AnsweredFlag: Sendable {
    private let flag = Mutex(false)
    var value: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

/// Handles invocations; one at a time per execution environment.
public protocol LambdaHandler: Sendable {
    /// Answers `invocation` through `responder`. A handler that throws before answering is
    /// reported to Lambda's `/error`; the error's text must carry no PHI.
    func handle(_ invocation: LambdaInvocation, responder: LambdaResponder) async throws
}

/// The runtime loop: `next`, handle, reply; again. A 500 from the Runtime API ends it (the
/// process then exits and Lambda starts a fresh one).
public struct LambdaRuntime: Sendable {
    public let client: LambdaRuntimeClient
    let logger: Logger

    public init(client: LambdaRuntimeClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Serves invocations until the task is cancelled or the Runtime API fails unrecoverably
    /// (``LambdaRuntimeError/nonRecoverable(path:)``, rethrown) or is unreachable.
    public func run(_ handler: some LambdaHandler) async throws(LambdaRuntimeError) {
        while !Task.isCancelled {
            let invocation = try await client.next()
            try await serve(invocation, handler)
        }
    }

    /// Handles one invocation and reports its failure if the handler did not answer.
    /// Rethrows only a Runtime API failure that must end the process.
    func serve(_ invocation: LambdaInvocation, _ handler: some LambdaHandler) async throws(LambdaRuntimeError) {
        if let trace = invocation.context.traceId {
            setenv("_X_AMZN_TRACE_ID", trace, 1)
        } else {
            unsetenv("_X_AMZN_TRACE_ID")
        }
        var logger = logger
        logger[metadataKey: "aws.request.id"] = "\(invocation.context.requestId)"
        let responder = LambdaResponder(client: client, requestId: invocation.context.requestId)
        do {
            try await handler.handle(invocation, responder: responder)
        } catch {
            if let runtime = error as? LambdaRuntimeError, case .nonRecoverable = runtime { throw runtime }
            logger.error("lambda.invocation.failed", metadata: ["error.type": "\(type(of: error))"])
            guard !responder.hasAnswered else { return }
            try? await client.reportError(requestId: invocation.context.requestId, LambdaRuntimeClient.document(for: error))
        }
    }
}
