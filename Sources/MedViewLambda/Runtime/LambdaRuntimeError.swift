/// Why a call to the Lambda Runtime API failed.
public enum LambdaRuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `AWS_LAMBDA_RUNTIME_API` is not `host:port`.
    case invalidEndpoint(String)
    /// The Runtime API could not be reached, or the connection closed before its answer.
    case connectionFailed(String)
    /// `/next` answered without a header Lambda always sends.
    case missingHeader(String)
    /// The Runtime API answered `status` to `path` (400, 403, 413: this invocation's reply was refused).
    case rejected(path: String, status: Int)
    /// The Runtime API answered 500: the runtime must exit promptly (Lambda starts a new one).
    case nonRecoverable(path: String)

    public var description: String {
        switch self {
        case .invalidEndpoint(let value): "AWS_LAMBDA_RUNTIME_API must be host:port, not '\(value)'"
        case .connectionFailed(let detail): "the Lambda Runtime API is unreachable: \(detail)"
        case .missingHeader(let name): "the Lambda Runtime API's /next answer lacks \(name)"
        case .rejected(let path, let status): "the Lambda Runtime API refused \(path) with HTTP \(status)"
        case .nonRecoverable(let path): "the Lambda Runtime API answered 500 to \(path): exiting"
        }
    }
}

/// What a function reports to `/error` or `/init/error`: Lambda's error document.
public struct LambdaErrorReport: Error, Sendable, Equatable, Encodable {
    /// Lambda's `Category.Reason` form, e.g. `Runtime.UnknownReason`, `Function.Unhandled`.
    public var errorType: String
    /// A sentence for the operator; never message text, tokens or other PHI.
    public var errorMessage: String
    public var stackTrace: [String] = []

    public init(type: String, message: String) {
        self.errorType = type
        self.errorMessage = message
    }
}
