import Foundation

/// One `application/vnd.amazon.eventstream` message: ordered, uniquely named headers and a payload.
///
/// The wire form (all integers big-endian):
///
/// ```
/// total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32
/// ```
///
/// Invariant kept by the decoder (and checked by the encoder): no two headers share a name.
public struct EventStreamMessage: Sendable, Hashable {
    /// The headers in wire order.
    public var headers: [EventStreamHeader]
    /// The payload bytes (for Bedrock, usually JSON).
    public var payload: [UInt8]

    /// A message with `headers` (in wire order) and `payload`.
    public init(headers: [EventStreamHeader] = [], payload: [UInt8] = []) {
        self.headers = headers
        self.payload = payload
    }

    /// The value of the header called `name`, if present.
    public subscript(header name: String) -> EventStreamHeaderValue? {
        headers.first { $0.name == name }?.value
    }

    /// The string value of the header called `name`, if present and of string type
    /// (`:event-type`, `:message-type`, `:content-type`, `:exception-type`…).
    public func string(_ name: String) -> String? {
        if case .string(let value)? = self[header: name] { return value }
        return nil
    }
}

/// One named header of an ``EventStreamMessage``.
public struct EventStreamHeader: Sendable, Hashable {
    /// The header name (1 length byte on the wire, so at most 255 UTF-8 bytes).
    public var name: String
    /// The typed value.
    public var value: EventStreamHeaderValue

    /// A header called `name` holding `value`.
    public init(name: String, value: EventStreamHeaderValue) {
        self.name = name
        self.value = value
    }
}

/// A typed header value; the case decides the wire type byte.
public enum EventStreamHeaderValue: Sendable, Hashable {
    /// Wire types 0 (`true`) and 1 (`false`): no value bytes.
    case bool(Bool)
    /// Wire type 2: one signed byte.
    case byte(Int8)
    /// Wire type 3: big-endian `Int16`.
    case int16(Int16)
    /// Wire type 4: big-endian `Int32`.
    case int32(Int32)
    /// Wire type 5: big-endian `Int64`.
    case int64(Int64)
    /// Wire type 6: `u16` length, then the bytes (at most 65,535).
    case byteArray([UInt8])
    /// Wire type 7: `u16` length, then UTF-8 bytes (at most 65,535).
    case string(String)
    /// Wire type 8: big-endian `Int64` milliseconds since 1970-01-01T00:00:00Z.
    case timestamp(milliseconds: Int64)
    /// Wire type 9: 16 raw bytes.
    case uuid(UUID)

    /// The wire type byte of this value (0…9).
    public var wireType: UInt8 {
        switch self {
        case .bool(let value): value ? 0 : 1
        case .byte: 2
        case .int16: 3
        case .int32: 4
        case .int64: 5
        case .byteArray: 6
        case .string: 7
        case .timestamp: 8
        case .uuid: 9
        }
    }

    /// A timestamp value for `date`, truncated to whole milliseconds.
    public static func timestamp(_ date: Date) -> EventStreamHeaderValue {
        .timestamp(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
    }
}
