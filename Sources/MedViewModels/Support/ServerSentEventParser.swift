/// Why a Server-Sent Events stream was refused.
public enum ServerSentEventError: Error, Sendable, Equatable {
    /// A line (without its terminator) is longer than the parser's limit, in bytes.
    case lineTooLong(limit: Int)
    /// The data of one event is larger than the parser's limit, in bytes.
    case eventTooLarge(limit: Int)
}

/// An incremental parser of `text/event-stream` bodies (the WHATWG HTML "event stream" rules).
///
/// Feed it the body's bytes in pieces of any size; it returns the events completed by each piece.
/// Lines end with CRLF, LF or CR (a CR at the end of one piece and an LF at the start of the next
/// are one terminator). A leading UTF-8 byte order mark is skipped. Lines starting with `:` are
/// comments and are ignored; fields other than `event`, `data`, `id` and `retry` are ignored; a
/// field without a colon has an empty value; one space after the colon is removed. An empty line
/// dispatches the event if it has data. An event's ``ServerSentEvent/data`` replaces invalid UTF-8
/// with U+FFFD (its ``ServerSentEvent/bytes`` are as they arrived). An event the body
/// ends in the middle of (no blank line after it) is not dispatched, as the specification says;
/// ``hasPendingEvent`` tells whether that happened.
///
/// Invariant: memory is bounded by `maxLineBytes + maxEventBytes`; longer input is refused with
/// ``ServerSentEventError`` rather than buffered.
public struct ServerSentEventParser: Sendable {
    /// The longest line accepted, in bytes.
    public let maxLineBytes: Int
    /// The largest event data accepted, in bytes.
    public let maxEventBytes: Int
    /// The reconnection time the stream asked for with `retry:`, in milliseconds.
    public private(set) var retryMilliseconds: Int?

    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    /// The `event:` name's bytes (empty: none, or empty, so `message`).
    private var eventType: [UInt8] = []
    private var lastEventId: String?
    private var sawFieldInEvent = false
    /// The previous piece ended with CR: an LF starting the next piece belongs to it.
    private var skipLeadingLineFeed = false
    /// Bytes of the stream start still to check against the byte order mark.
    private var bomState = 0
    private var started = false

    /// A parser refusing lines longer than `maxLineBytes` and events larger than `maxEventBytes`.
    public init(maxLineBytes: Int = 1 << 20, maxEventBytes: Int = 4 << 20) {
        self.maxLineBytes = max(1, maxLineBytes)
        self.maxEventBytes = max(1, maxEventBytes)
    }

    /// Whether the bytes fed so far hold fields of an event not yet ended by a blank line (or a partial line).
    public var hasPendingEvent: Bool { sawFieldInEvent || !line.isEmpty }

    /// Parses the next piece of the body and returns the events it completes, in order.
    /// - Throws: ``ServerSentEventError`` when a line or an event exceeds the limits; the parser is unusable afterwards.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(ServerSentEventError) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        try feed(bytes) { view in
            events.append(view.event)
            return true
        }
        return events
    }

    /// Parses the next piece of the body and hands each event it completes to `each`, in order,
    /// as a view valid only during that call: an event whose one `data:` line lies in this piece
    /// is handed over where it lies, without being copied. `each` returns `false` to stop
    /// (the rest of the piece is then not parsed, and the parser should not be fed again).
    /// - Throws: ``ServerSentEventError`` when a line or an event exceeds the limits; the parser is unusable afterwards.
    public mutating func feed(_ bytes: some Collection<UInt8>, each: (ServerSentEventView) -> Bool) throws(ServerSentEventError) {
        var failure: ServerSentEventError?
        let handled: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            do throws(ServerSentEventError) { try feed(buffer, each: each) } catch { failure = error }
        }
        if handled == nil {
            [UInt8](bytes).withUnsafeBufferPointer { buffer in
                do throws(ServerSentEventError) { try feed(buffer, each: each) } catch { failure = error }
            }
        }
        if let failure { throw failure }
    }

    private mutating func feed(_ buffer: UnsafeBufferPointer<UInt8>, each: (ServerSentEventView) -> Bool) throws(ServerSentEventError) {
        // The data of the event being read, while it is one line of `buffer` (not yet copied).
        var slice: UnsafeBufferPointer<UInt8>?
        // Whatever ends this call, data that lies in `buffer` is kept before `buffer` goes.
        defer { if let pending = slice { data.append(contentsOf: pending) } }
        var stopped = false
        var index = 0
        let count = buffer.count
        if !started {
            // Skip a UTF-8 byte order mark (EF BB BF), which may itself arrive split.
            let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
            while index < count && bomState < 3 {
                if buffer[index] == bom[bomState] {
                    bomState += 1
                    index += 1
                } else {
                    // Not a BOM after all: the bytes matched so far are ordinary line bytes.
                    line.append(contentsOf: bom[0..<bomState])
                    bomState = 3
                }
            }
            if bomState == 3 { started = true }
            if index == count { return }
        }
        if skipLeadingLineFeed && index < count {
            skipLeadingLineFeed = false
            if buffer[index] == UInt8(ascii: "\n") { index += 1 }
        }
        while index < count && !stopped {
            // Find the end of the current line in this piece.
            var end = index
            while end < count {
                let byte = buffer[end]
                if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { break }
                end += 1
            }
            let length = end - index
            if line.count + length > maxLineBytes { throw .lineTooLong(limit: maxLineBytes) }
            if end == count {
                line.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end]))
                return
            }
            if line.isEmpty {
                try processLine(UnsafeBufferPointer(rebasing: buffer[index..<end]), inPiece: true, slice: &slice, stopped: &stopped, each: each)
            } else {
                line.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<end]))
                let whole = line
                line.removeAll(keepingCapacity: true)
                try whole.withUnsafeBufferPointer { (pointer) throws(ServerSentEventError) in
                    try processLine(pointer, inPiece: false, slice: &slice, stopped: &stopped, each: each)
                }
            }
            // Consume the terminator: CR, LF, or CR LF (possibly split across pieces).
            if buffer[end] == UInt8(ascii: "\r") {
                if end + 1 < count {
                    index = buffer[end + 1] == UInt8(ascii: "\n") ? end + 2 : end + 1
                } else {
                    skipLeadingLineFeed = true
                    index = end + 1
                }
            } else {
                index = end + 1
            }
        }
    }

    /// One line. `inPiece`: the line's bytes stay valid until the piece being fed is done, so a
    /// first data line may be kept as `slice` rather than copied.
    private mutating func processLine(
        _ bytes: UnsafeBufferPointer<UInt8>, inPiece: Bool, slice: inout UnsafeBufferPointer<UInt8>?,
        stopped: inout Bool, each: (ServerSentEventView) -> Bool
    ) throws(ServerSentEventError) {
        if bytes.isEmpty {
            dispatch(slice: &slice, stopped: &stopped, each: each)
            return
        }
        if bytes[0] == UInt8(ascii: ":") { return }
        let colon = bytes.firstIndex(of: UInt8(ascii: ":"))
        let nameEnd = colon ?? bytes.count
        var valueStart = colon.map { $0 + 1 } ?? bytes.count
        if valueStart < bytes.count && bytes[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let name = UnsafeBufferPointer(rebasing: bytes[0..<nameEnd])
        let value = UnsafeBufferPointer(rebasing: bytes[valueStart..<bytes.count])
        switch name.count {
        case 4 where name.elementsEqual("data".utf8):
            sawFieldInEvent = true
            if value.count > maxEventBytes { throw .eventTooLarge(limit: maxEventBytes) }
            if !hasData && inPiece {
                // The event's first data line, where it lies: copied only if more follows.
                slice = value
                hasData = true
                return
            }
            if let pending = slice {
                data.append(contentsOf: pending)
                slice = nil
            }
            if hasData { data.append(UInt8(ascii: "\n")) }
            if data.count + value.count > maxEventBytes { throw .eventTooLarge(limit: maxEventBytes) }
            data.append(contentsOf: value)
            hasData = true
        case 5 where name.elementsEqual("event".utf8):
            sawFieldInEvent = true
            eventType.removeAll(keepingCapacity: true)
            eventType.append(contentsOf: value)
        case 2 where name.elementsEqual("id".utf8):
            sawFieldInEvent = true
            if !value.contains(0) { lastEventId = String(decoding: value, as: UTF8.self) }
        case 5 where name.elementsEqual("retry".utf8):
            sawFieldInEvent = true
            if !value.isEmpty, value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), value.count <= 18 {
                retryMilliseconds = Int(String(decoding: value, as: UTF8.self))
            }
        default:
            break
        }
    }

    private mutating func dispatch(slice: inout UnsafeBufferPointer<UInt8>?, stopped: inout Bool, each: (ServerSentEventView) -> Bool) {
        defer {
            slice = nil
            data.removeAll(keepingCapacity: true)
            hasData = false
            eventType.removeAll(keepingCapacity: true)
            sawFieldInEvent = false
        }
        guard hasData else { return }
        let lastEventId = self.lastEventId
        eventType.withUnsafeBufferPointer { type in
            if let slice {
                stopped = !each(ServerSentEventView(typeBytes: type, bytes: slice, lastEventId: lastEventId))
            } else {
                data.withUnsafeBufferPointer { bytes in
                    stopped = !each(ServerSentEventView(typeBytes: type, bytes: bytes, lastEventId: lastEventId))
                }
            }
        }
    }
}

/// One event of a stream as ``ServerSentEventParser/feed(_:each:)`` hands it over: its bytes are
/// borrowed from the parser (or from the piece being fed) and valid only during that call.
public struct ServerSentEventView {
    /// The `event:` name's bytes; empty when the event named none (its type is then `message`).
    public let typeBytes: UnsafeBufferPointer<UInt8>
    /// The `data:` lines' bytes joined with `\n`.
    public let bytes: UnsafeBufferPointer<UInt8>
    /// The last `id:` seen in the stream so far, if any.
    public let lastEventId: String?

    init(typeBytes: UnsafeBufferPointer<UInt8>, bytes: UnsafeBufferPointer<UInt8>, lastEventId: String?) {
        self.typeBytes = typeBytes
        self.bytes = bytes
        self.lastEventId = lastEventId
    }

    /// Whether the event's type is `name`.
    public func isType(_ name: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        return typeBytes.isEmpty ? expected.elementsEqual("message".utf8) : typeBytes.elementsEqual(expected)
    }

    /// The event's type (`message` when it named none).
    public var type: String { typeBytes.isEmpty ? "message" : String(decoding: typeBytes, as: UTF8.self) }

    /// The event, copied out.
    public var event: ServerSentEvent { ServerSentEvent(type: type, bytes: Array(bytes), lastEventId: lastEventId) }
}
