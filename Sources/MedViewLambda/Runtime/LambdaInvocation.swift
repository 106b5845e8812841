import Foundation
import NIOCore

/// What Lambda says about one invocation, from the headers of `/next`.
public struct LambdaInvocationContext: Sendable, Equatable {
    /// `Lambda-Runtime-Aws-Request-Id`.
    public var requestId: String
    /// `Lambda-Runtime-Deadline-Ms`: when Lambda stops the invocation.
    public var deadline: Date
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    public var invokedFunctionARN: String
    /// `Lambda-Runtime-Trace-Id` (the runtime puts it in `_X_AMZN_TRACE_ID`).
    public var traceId: String?
    /// `Lambda-Runtime-Client-Context` (mobile SDK invocations).
    public var clientContext: String?
    /// `Lambda-Runtime-Cognito-Identity` (mobile SDK invocations).
    public var cognitoIdentity: String?

    public init(requestId: String, deadline: Date, invokedFunctionARN: String, traceId: String? = nil, clientContext: String? = nil, cognitoIdentity: String? = nil) {
        self.requestId = requestId
        self.deadline = deadline
        self.invokedFunctionARN = invokedFunctionARN
        self.traceId = traceId
        self.clientContext = clientContext
        self.cognitoIdentity = cognitoIdentity
    }

    /// Reads the context from `/next`'s headers (`lookup` finds a header by name, any case).
    /// - Throws: ``LambdaRuntimeError/missingHeader(_:)`` without the request id, a numeric
    ///   deadline or the function ARN.
    static func parse(_ lookup: (String) -> String?) throws(LambdaRuntimeError) -> LambdaInvocationContext {
        guard let requestId = lookup("Lambda-Runtime-Aws-Request-Id"), !requestId.isEmpty else {
            throw .missingHeader("Lambda-Runtime-Aws-Request-Id")
        }
        guard let raw = lookup("Lambda-Runtime-Deadline-Ms"), let ms = Int64(raw.trimmingCharacters(in: .whitespaces)) else {
            throw .missingHeader("Lambda-Runtime-Deadline-Ms")
        }
        guard let arn = lookup("Lambda-Runtime-Invoked-Function-Arn"), !arn.isEmpty else {
            throw .missingHeader("Lambda-Runtime-Invoked-Function-Arn")
        }
        return LambdaInvocationContext(
            requestId: requestId,
            deadline: Date(timeIntervalSince1970: Double(ms) / 1000),
            invokedFunctionARN: arn,
            traceId: lookup("Lambda-Runtime-Trace-Id"),
            clientContext: lookup("Lambda-Runtime-Client-Context"),
            cognitoIdentity: lookup("Lambda-Runtime-Cognito-Identity")
        )
    }
}

/// One invocation: its context and its event (the JSON payload).
public struct LambdaInvocation: Sendable {
    public var context: LambdaInvocationContext
    public var event: ByteBuffer

    public init(context: LambdaInvocationContext, event: ByteBuffer) {
        self.context = context
        self.event = event
    }
}
