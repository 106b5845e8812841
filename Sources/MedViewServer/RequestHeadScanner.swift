/// Measures a request head as its bytes arrive, before the HTTP parser buffers it: the request
/// line, the number of header fields and the head's total size, each against its limit, and
/// where the head ends (the empty line).
///
/// A pure value type: feed it bytes in any split, and it answers as soon as a limit is passed,
/// without waiting for the rest of the line.
struct RequestHeadScanner: Sendable {
    /// A limit the head went past.
    enum Violation: Equatable, Sendable {
        /// The request line is longer than its limit (414).
        case requestLineTooLong
        /// More header fields than allowed (431).
        case tooManyHeaderFields
        /// The head is larger than allowed (431).
        case headTooLarge
    }

    /// What ``scan(_:)`` found.
    enum Outcome: Equatable, Sendable {
        /// The head is not complete yet and within every limit.
        case incomplete
        /// The head ended `consumed` bytes into the bytes given to this call.
        case complete(consumed: Int)
        case violation(Violation)
    }

    let maxRequestLineBytes: Int
    let maxHeaderCount: Int
    let maxHeaderBytes: Int

    /// Head bytes seen so far (empty lines before the request line included).
    private(set) var headBytes = 0
    /// Bytes of the current line so far, its line end excluded.
    private var lineBytes = 0
    /// Whether the last byte was a carriage return.
    private var afterCR = false
    /// Complete lines so far: the request line, then one per header field.
    private var lines = 0

    init(limits: HTTPConnectionLimits) {
        maxRequestLineBytes = limits.maxRequestLineBytes
        maxHeaderCount = limits.maxHeaderCount
        maxHeaderBytes = limits.maxHeaderBytes
    }

    /// Whether any byte of the head has arrived.
    var hasStarted: Bool { headBytes > 0 }

    /// Scans the next bytes of the head. After `.complete` or `.violation`, start a new scanner.
    mutating func scan(_ bytes: some Sequence<UInt8>) -> Outcome {
        var consumed = 0
        for byte in bytes {
            consumed += 1
            headBytes += 1
            if byte == UInt8(ascii: "\n") {
                let length = afterCR ? lineBytes - 1 : lineBytes
                afterCR = false
                lineBytes = 0
                if length == 0 {
                    // An empty line: the end of the head, or (before the request line) ignored.
                    if lines > 0 { return .complete(consumed: consumed) }
                } else {
                    lines += 1
                    if lines == 1, length > maxRequestLineBytes { return .violation(.requestLineTooLong) }
                    if lines - 1 > maxHeaderCount { return .violation(.tooManyHeaderFields) }
                }
            } else {
                lineBytes += 1
                afterCR = byte == UInt8(ascii: "\r")
                // One more byte is allowed for the carriage return of the line end.
                if lines == 0, lineBytes > maxRequestLineBytes + 1 { return .violation(.requestLineTooLong) }
            }
            if headBytes > maxHeaderBytes {
                return lines == 0 && lineBytes > maxRequestLineBytes ? .violation(.requestLineTooLong) : .violation(.headTooLarge)
            }
        }
        return .incomplete
    }
}
