/// Every error code the server sends, in `error` events and in HTTP error bodies.
///
/// The raw value is the wire code. PROTOCOL.md documents each one; this enum is the single source.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    // Input errors: the client should fix the input; retrying the same input fails again.
    case malformedJSON = "malformed_json"
    case unknownType = "unknown_type"
    case invalidCommand = "invalid_command"
    case invalidUTF8 = "invalid_utf8"
    case unsupportedFrame = "unsupported_frame"
    case frameTooLarge = "frame_too_large"
    case messageTooLarge = "message_too_large"
    case emptyMessage = "empty_message"
    /// Text with U+0000 or another control character that is not tab, line feed or carriage return.
    case invalidText = "invalid_text"
    case idempotencyConflict = "idempotency_conflict"
    case notAcceptable = "not_acceptable"
    // Identity.
    case unauthorized = "unauthorized"
    case tokenExpired = "token_expired"
    // Not found, including anything that belongs to another user.
    case notFound = "not_found"
    // Limits.
    case tooManyConnections = "too_many_connections"
    case tooManyStreams = "too_many_streams"
    /// The server runs as many answers as it admits; retry shortly (another instance may take it).
    case overloaded = "overloaded"
    case idleTimeout = "idle_timeout"
    /// The user sent messages faster than the rate limit allows, or used up the daily output budget.
    case rateLimited = "rate_limited"
    // The model and the server.
    case modelThrottled = "model_throttled"
    case modelUnavailable = "model_unavailable"
    case modelError = "model_error"
    case storageUnavailable = "storage_unavailable"
    case shuttingDown = "shutting_down"
    /// The server process running the answer stopped without ending it (a crash); the events it
    /// had persisted were replayed before this error.
    case interrupted = "interrupted"
    case internalError = "internal"
    // The HTTP layer (docs/SECURITY.md): answered before any route runs, then the connection closes.
    case originNotAllowed = "origin_not_allowed"
    case hostNotAllowed = "host_not_allowed"
    case malformedRequest = "malformed_request"
    case uriTooLong = "uri_too_long"
    case headersTooLarge = "headers_too_large"
    case requestTimeout = "request_timeout"

    /// Whether the same request may succeed if the client tries again later.
    public var retryable: Bool {
        switch self {
        case .tooManyConnections, .tooManyStreams, .overloaded, .rateLimited, .modelThrottled, .modelUnavailable,
            .storageUnavailable, .shuttingDown, .interrupted, .internalError, .tokenExpired, .idleTimeout,
            .requestTimeout:
            true
        default:
            false
        }
    }

    /// The HTTP status the code maps to on REST and SSE endpoints.
    public var httpStatus: Int {
        switch self {
        case .malformedJSON, .unknownType, .invalidCommand, .invalidUTF8, .unsupportedFrame, .emptyMessage, .invalidText: 400
        case .frameTooLarge, .messageTooLarge: 413
        case .idempotencyConflict: 409
        case .notAcceptable: 406
        case .unauthorized, .tokenExpired: 401
        case .notFound: 404
        case .tooManyConnections, .tooManyStreams, .rateLimited: 429
        case .idleTimeout: 408
        case .modelThrottled, .modelUnavailable, .storageUnavailable, .shuttingDown, .interrupted, .overloaded: 503
        case .modelError: 502
        case .internalError: 500
        case .originNotAllowed, .hostNotAllowed: 403
        case .malformedRequest: 400
        case .uriTooLong: 414
        case .headersTooLarge: 431
        case .requestTimeout: 408
        }
    }
}

/// Why a frame or request body could not be turned into a ``ClientCommand``.
public struct CommandDecodingError: Error, Sendable, Equatable {
    /// The wire error code.
    public var code: ErrorCode
    /// A message safe to show the client: it never echoes the input.
    public var message: String
    /// The command id, when the input got far enough to have one.
    public var commandId: String?

    public init(code: ErrorCode, message: String, commandId: String? = nil) {
        self.code = code
        self.message = message
        self.commandId = commandId
    }
}
