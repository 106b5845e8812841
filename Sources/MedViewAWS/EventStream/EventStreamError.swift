/// Everything that can go wrong reading or writing `application/vnd.amazon.eventstream`.
///
/// Each corruption a stream can carry has its own case, so a caller (and a test) can tell a
/// bit flip in the prelude from an over-long message or a server that repeats a header.
public enum EventStreamError: Error, Sendable, Hashable {
    /// The prelude's CRC32 does not match its first eight bytes: the lengths cannot be trusted.
    case preludeChecksumMismatch(expected: UInt32, computed: UInt32)
    /// The message CRC32 does not match the bytes before it.
    case messageChecksumMismatch(expected: UInt32, computed: UInt32)
    /// The total length is below 16, the size of a message with no headers and no payload.
    case messageTooShort(totalLength: UInt32)
    /// The headers length does not fit inside the total length.
    case inconsistentLengths(totalLength: UInt32, headersLength: UInt32)
    /// The headers are longer than the limit (botocore's `InvalidHeadersLength`; 128 KiB).
    case headersTooLong(length: Int, limit: Int)
    /// The payload is longer than the limit (botocore's `InvalidPayloadLength`; 24 MiB).
    case payloadTooLong(length: Int, limit: Int)
    /// Two headers of one message have the same name (botocore's `DuplicateHeader`).
    case duplicateHeader(name: String)
    /// A header runs past the end of the headers section.
    case truncatedHeader(offset: Int)
    /// A header has a value type byte other than 0…9.
    case unknownHeaderType(UInt8, offset: Int)
    /// A header name or string value is not valid UTF-8.
    case invalidUTF8(offset: Int)
    /// The stream ended inside a message (`finish()` with bytes still buffered).
    case truncatedStream(bufferedBytes: Int)
    /// Encoding: a header name is longer than 255 UTF-8 bytes.
    case invalidHeaderName(String)
    /// Encoding: a string or byte-array header value is longer than 65,535 bytes.
    case headerValueTooLong(name: String, length: Int)
}

extension EventStreamError: CustomStringConvertible {
    /// A one-line explanation (no payload content).
    public var description: String {
        switch self {
        case .preludeChecksumMismatch(let expected, let computed):
            "event stream: prelude checksum mismatch (wire \(hex(expected)), computed \(hex(computed)))"
        case .messageChecksumMismatch(let expected, let computed):
            "event stream: message checksum mismatch (wire \(hex(expected)), computed \(hex(computed)))"
        case .messageTooShort(let total):
            "event stream: total length \(total) is below the 16-byte minimum"
        case .inconsistentLengths(let total, let headers):
            "event stream: headers length \(headers) does not fit in total length \(total)"
        case .headersTooLong(let length, let limit):
            "event stream: headers length \(length) exceeds \(limit)"
        case .payloadTooLong(let length, let limit):
            "event stream: payload length \(length) exceeds \(limit)"
        case .duplicateHeader(let name):
            "event stream: duplicate header '\(name)'"
        case .truncatedHeader(let offset):
            "event stream: header at offset \(offset) runs past the headers section"
        case .unknownHeaderType(let type, let offset):
            "event stream: unknown header value type \(type) at offset \(offset)"
        case .invalidUTF8(let offset):
            "event stream: invalid UTF-8 in the header at offset \(offset)"
        case .truncatedStream(let buffered):
            "event stream: stream ended inside a message (\(buffered) bytes buffered)"
        case .invalidHeaderName(let name):
            "event stream: header name '\(name)' is longer than 255 UTF-8 bytes"
        case .headerValueTooLong(let name, let length):
            "event stream: value of header '\(name)' is \(length) bytes (at most 65535)"
        }
    }

    private func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}
