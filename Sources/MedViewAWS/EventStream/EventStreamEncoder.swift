import Foundation

/// Writes `application/vnd.amazon.eventstream` messages.
///
/// For any message the decoder returns, encoding it gives back the exact bytes it came from.
/// The encoder refuses what the decoder (and botocore) would refuse: header names over 255
/// bytes, string and byte-array values over 65,535 bytes, repeated header names, and headers or
/// payloads over the ``EventStreamDecoder/Limits``.
public struct EventStreamEncoder: Sendable {
    /// The limits every encoded message must respect.
    public let limits: EventStreamDecoder.Limits

    /// An encoder enforcing `limits` (botocore's by default).
    public init(limits: EventStreamDecoder.Limits = .botocore) {
        self.limits = limits
    }

    /// The wire bytes of `message`.
    public func encode(_ message: EventStreamMessage) throws(EventStreamError) -> [UInt8] {
        var out: [UInt8] = []
        try encode(message, into: &out)
        return out
    }

    /// Appends the wire bytes of `message` to `out`.
    public func encode(_ message: EventStreamMessage, into out: inout [UInt8]) throws(EventStreamError) {
        let headersLength = try Self.headersLength(message.headers)
        guard headersLength <= limits.maxHeadersLength else {
            throw .headersTooLong(length: headersLength, limit: limits.maxHeadersLength)
        }
        guard message.payload.count <= limits.maxPayloadLength else {
            throw .payloadTooLong(length: message.payload.count, limit: limits.maxPayloadLength)
        }
        if message.headers.count > 1 {
            var names = Set<String>(minimumCapacity: message.headers.count)
            for header in message.headers where !names.insert(header.name).inserted {
                throw .duplicateHeader(name: header.name)
            }
        }
        let total = 16 + headersLength + message.payload.count
        let messageStart = out.count
        if out.capacity < messageStart + total {
            // Grow geometrically: an exact reserve per message would copy the buffer every time.
            out.reserveCapacity(max(messageStart + total, 2 * out.capacity))
        }
        out.appendBigEndian(UInt32(total))
        out.appendBigEndian(UInt32(headersLength))
        let preludeCRC = out.withUnsafeBytes { CRC32.update(0, UnsafeRawBufferPointer(rebasing: $0[messageStart..<messageStart + 8])) }
        out.appendBigEndian(preludeCRC)
        for header in message.headers {
            Self.append(header, to: &out)
        }
        out.append(contentsOf: message.payload)
        let messageCRC = out.withUnsafeBytes { CRC32.update(preludeCRC, UnsafeRawBufferPointer(rebasing: $0[(messageStart + 8)...])) }
        out.appendBigEndian(messageCRC)
    }

    /// The wire bytes of `messages`, one after another.
    public func encode(_ messages: some Sequence<EventStreamMessage>) throws(EventStreamError) -> [UInt8] {
        var out: [UInt8] = []
        for message in messages {
            try encode(message, into: &out)
        }
        return out
    }

    /// The size of the headers section, validating names and variable-length values.
    static func headersLength(_ headers: [EventStreamHeader]) throws(EventStreamError) -> Int {
        var length = 0
        for header in headers {
            let nameLength = header.name.utf8.count
            guard nameLength <= 255 else { throw .invalidHeaderName(header.name) }
            length += 2 + nameLength
            switch header.value {
            case .bool: break
            case .byte: length += 1
            case .int16: length += 2
            case .int32: length += 4
            case .int64, .timestamp: length += 8
            case .uuid: length += 16
            case .byteArray(let bytes):
                guard bytes.count <= 65_535 else { throw .headerValueTooLong(name: header.name, length: bytes.count) }
                length += 2 + bytes.count
            case .string(let string):
                let count = string.utf8.count
                guard count <= 65_535 else { throw .headerValueTooLong(name: header.name, length: count) }
                length += 2 + count
            }
        }
        return length
    }

    private static func append(_ header: EventStreamHeader, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: header.name.utf8.count))
        out.append(contentsOf: header.name.utf8)
        out.append(header.value.wireType)
        switch header.value {
        case .bool:
            break
        case .byte(let value):
            out.append(UInt8(bitPattern: value))
        case .int16(let value):
            out.appendBigEndian(UInt16(bitPattern: value))
        case .int32(let value):
            out.appendBigEndian(UInt32(bitPattern: value))
        case .int64(let value), .timestamp(milliseconds: let value):
            out.appendBigEndian(UInt64(bitPattern: value))
        case .byteArray(let bytes):
            out.appendBigEndian(UInt16(truncatingIfNeeded: bytes.count))
            out.append(contentsOf: bytes)
        case .string(let string):
            out.appendBigEndian(UInt16(truncatingIfNeeded: string.utf8.count))
            out.append(contentsOf: string.utf8)
        case .uuid(let uuid):
            withUnsafeBytes(of: uuid.uuid) { out.append(contentsOf: $0) }
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends `value` in network byte order.
    @inline(__always)
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
