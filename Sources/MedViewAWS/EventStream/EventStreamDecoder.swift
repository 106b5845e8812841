import Foundation

/// An incremental `application/vnd.amazon.eventstream` decoder.
///
/// Feed bytes in pieces of any size with ``append(_:)`` (one byte at a time works), then call
/// ``next()`` until it returns `nil` (more bytes needed). At the end of the stream call
/// ``finish()``, which throws if a partial message is left over.
///
/// Order of checks, so that nothing read from the wire is trusted before it is verified:
/// 1. the 12-byte prelude's CRC32, as soon as 12 bytes are buffered;
/// 2. the lengths it carries: total ≥ 16, headers fit in the total, headers ≤ 128 KiB and
///    payload ≤ 24 MiB (botocore's limits, adjustable through ``Limits``), still before any
///    more of the message is waited for;
/// 3. the message CRC32, once the whole message is buffered;
/// 4. the headers: known value types, lengths inside the headers section, valid UTF-8 and
///    unique names.
///
/// Every failure is a distinct ``EventStreamError``. After one, the decoder is failed for good:
/// every later call rethrows the same error (a stream is never resynchronised, since nothing
/// after a corrupt length can be trusted).
public struct EventStreamDecoder: Sendable {
    /// Size limits applied to every message before its body is buffered.
    public struct Limits: Sendable, Hashable {
        /// Largest headers section, in bytes.
        public var maxHeadersLength: Int
        /// Largest payload, in bytes.
        public var maxPayloadLength: Int

        /// Limits of `maxHeadersLength` and `maxPayloadLength` bytes.
        public init(maxHeadersLength: Int, maxPayloadLength: Int) {
            self.maxHeadersLength = maxHeadersLength
            self.maxPayloadLength = maxPayloadLength
        }

        /// botocore's limits: 128 KiB of headers, 24 MiB of payload.
        public static let botocore = Limits(maxHeadersLength: 128 * 1024, maxPayloadLength: 24 * 1024 * 1024)
    }

    /// The verified prelude of the message being buffered.
    private struct Prelude {
        var totalLength: UInt32
        var headersLength: UInt32
        var crc: UInt32
    }

    /// The limits this decoder enforces.
    public let limits: Limits
    private var buffer: [UInt8] = []
    /// Index in `buffer` of the first byte not yet decoded.
    private var start = 0
    private var prelude: Prelude?
    private var failure: EventStreamError?

    /// A decoder with `limits` (botocore's by default).
    public init(limits: Limits = .botocore) {
        self.limits = limits
    }

    /// Bytes received but not yet returned as messages.
    public var bufferedByteCount: Int { buffer.count - start }

    /// The error that failed this decoder, if one did.
    public var error: EventStreamError? { failure }

    /// Adds the next bytes of the stream.
    ///
    /// - Throws: the earlier error, if the decoder has failed (the bytes are dropped).
    public mutating func append(_ bytes: some Sequence<UInt8>) throws(EventStreamError) {
        if let failure { throw failure }
        if start > 0 {
            if start == buffer.count {
                // Keep the storage for the next messages, unless a huge one left it oversized.
                buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
                start = 0
            } else if start >= 4096, start * 2 >= buffer.count {
                buffer.removeSubrange(0..<start)
                start = 0
            }
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, or `nil` if more bytes are needed.
    public mutating func next() throws(EventStreamError) -> EventStreamMessage? {
        try nextFrame()?.message
    }

    /// The next complete message with its framing fields, or `nil` if more bytes are needed.
    public mutating func nextFrame() throws(EventStreamError) -> EventStreamFrame? {
        if let failure { throw failure }
        do {
            return try decodeNext()
        } catch {
            failure = error
            throw error
        }
    }

    /// Declares the end of the stream.
    ///
    /// - Throws: ``EventStreamError/truncatedStream(bufferedBytes:)`` if part of a message is
    ///   still buffered (call ``next()`` until `nil` first), or the earlier error.
    public mutating func finish() throws(EventStreamError) {
        if let failure { throw failure }
        if bufferedByteCount > 0 {
            let error = EventStreamError.truncatedStream(bufferedBytes: bufferedByteCount)
            failure = error
            throw error
        }
    }

    /// Decodes every message in `bytes`, which must end on a message boundary.
    public static func decodeAll(_ bytes: some Sequence<UInt8>, limits: Limits = .botocore) throws(EventStreamError) -> [EventStreamMessage] {
        var decoder = EventStreamDecoder(limits: limits)
        try decoder.append(bytes)
        var messages: [EventStreamMessage] = []
        while let message = try decoder.next() {
            messages.append(message)
        }
        try decoder.finish()
        return messages
    }

    // MARK: - Decoding

    private mutating func decodeNext() throws(EventStreamError) -> EventStreamFrame? {
        let available = buffer.count - start
        if prelude == nil {
            guard available >= 12 else { return nil }
            prelude = try readPrelude()
        }
        guard let prelude, available >= Int(prelude.totalLength) else { return nil }
        let offset = start
        let result: Result<EventStreamFrame, EventStreamError> = buffer.withUnsafeBufferPointer { bytes in
            Result { () throws(EventStreamError) in try Self.decodeMessage(bytes, at: offset, prelude: prelude) }
        }
        let frame = try result.get()
        start += Int(prelude.totalLength)
        self.prelude = nil
        return frame
    }

    private func readPrelude() throws(EventStreamError) -> Prelude {
        let offset = start
        let limits = limits
        let result: Result<Prelude, EventStreamError> = buffer.withUnsafeBufferPointer { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            let total = raw.uint32(at: offset)
            let headers = raw.uint32(at: offset + 4)
            let wireCRC = raw.uint32(at: offset + 8)
            let computed = CRC32.update(0, UnsafeRawBufferPointer(rebasing: raw[offset..<offset + 8]))
            guard computed == wireCRC else {
                return .failure(.preludeChecksumMismatch(expected: wireCRC, computed: computed))
            }
            guard total >= 16 else { return .failure(.messageTooShort(totalLength: total)) }
            guard Int(headers) <= limits.maxHeadersLength else {
                return .failure(.headersTooLong(length: Int(headers), limit: limits.maxHeadersLength))
            }
            guard headers <= total - 16 else {
                return .failure(.inconsistentLengths(totalLength: total, headersLength: headers))
            }
            let payload = Int(total) - 16 - Int(headers)
            guard payload <= limits.maxPayloadLength else {
                return .failure(.payloadTooLong(length: payload, limit: limits.maxPayloadLength))
            }
            return .success(Prelude(totalLength: total, headersLength: headers, crc: wireCRC))
        }
        return try result.get()
    }

    /// Decodes the whole message at `offset` (all `prelude.totalLength` bytes are present).
    private static func decodeMessage(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int, prelude: Prelude) throws(EventStreamError) -> EventStreamFrame {
        let raw = UnsafeRawBufferPointer(bytes)
        let total = Int(prelude.totalLength)
        let crcOffset = offset + total - 4
        let wireCRC = raw.uint32(at: crcOffset)
        // The prelude CRC is the CRC of the first 8 bytes: continue from it.
        let computed = CRC32.update(prelude.crc, UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<crcOffset]))
        guard computed == wireCRC else {
            throw .messageChecksumMismatch(expected: wireCRC, computed: computed)
        }
        let headersStart = offset + 12
        let headersEnd = headersStart + Int(prelude.headersLength)
        let headers = try decodeHeaders(bytes, from: headersStart, to: headersEnd)
        let payload = Array(UnsafeBufferPointer(rebasing: bytes[headersEnd..<crcOffset]))
        return EventStreamFrame(
            message: EventStreamMessage(headers: headers, payload: payload),
            totalLength: prelude.totalLength,
            headersLength: prelude.headersLength,
            preludeCRC: prelude.crc,
            messageCRC: wireCRC
        )
    }

    /// Parses the headers section `bytes[from..<to]`; offsets in errors are relative to the
    /// start of the message's headers.
    static func decodeHeaders(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to end: Int) throws(EventStreamError) -> [EventStreamHeader] {
        var headers: [EventStreamHeader] = []
        // One allocation for typical messages (a header takes at least 2 bytes, usually 15+).
        headers.reserveCapacity(min(16, (end - from) / 16 + 1))
        /// Names seen so far, once there are too many headers for a linear scan.
        var seen: Set<String>?
        let raw = UnsafeRawBufferPointer(bytes)
        var p = from
        while p < end {
            let headerOffset = p - from
            let nameLength = Int(bytes[p])
            p += 1
            guard nameLength < end - p else { throw .truncatedHeader(offset: headerOffset) }
            guard let name = utf8String(UnsafeBufferPointer(rebasing: bytes[p..<p + nameLength])) else {
                throw .invalidUTF8(offset: headerOffset)
            }
            p += nameLength
            let type = bytes[p]
            p += 1
            let remaining = end - p
            let value: EventStreamHeaderValue
            switch type {
            case 0:
                value = .bool(true)
            case 1:
                value = .bool(false)
            case 2:
                guard remaining >= 1 else { throw .truncatedHeader(offset: headerOffset) }
                value = .byte(Int8(bitPattern: bytes[p]))
                p += 1
            case 3:
                guard remaining >= 2 else { throw .truncatedHeader(offset: headerOffset) }
                value = .int16(Int16(bitPattern: UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt16.self))))
                p += 2
            case 4:
                guard remaining >= 4 else { throw .truncatedHeader(offset: headerOffset) }
                value = .int32(Int32(bitPattern: raw.uint32(at: p)))
                p += 4
            case 5, 8:
                guard remaining >= 8 else { throw .truncatedHeader(offset: headerOffset) }
                let number = Int64(bitPattern: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt64.self)))
                value = type == 5 ? .int64(number) : .timestamp(milliseconds: number)
                p += 8
            case 6, 7:
                guard remaining >= 2 else { throw .truncatedHeader(offset: headerOffset) }
                let length = Int(UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt16.self)))
                p += 2
                guard length <= remaining - 2 else { throw .truncatedHeader(offset: headerOffset) }
                let slice = UnsafeBufferPointer(rebasing: bytes[p..<p + length])
                if type == 6 {
                    value = .byteArray(Array(slice))
                } else {
                    guard let string = utf8String(slice) else {
                        throw .invalidUTF8(offset: headerOffset)
                    }
                    value = .string(string)
                }
                p += length
            case 9:
                guard remaining >= 16 else { throw .truncatedHeader(offset: headerOffset) }
                value = .uuid(UUID(uuid: raw.loadUnaligned(fromByteOffset: p, as: uuid_t.self)))
                p += 16
            default:
                throw .unknownHeaderType(type, offset: headerOffset)
            }
            if seen == nil, headers.count >= 16 {
                seen = Set(headers.map(\.name))
            }
            if seen != nil {
                guard seen?.insert(name).inserted == true else { throw .duplicateHeader(name: name) }
            } else {
                for existing in headers where existing.name == name {
                    throw .duplicateHeader(name: name)
                }
            }
            headers.append(EventStreamHeader(name: name, value: value))
        }
        return headers
    }
}

extension UnsafeRawBufferPointer {
    /// The big-endian `UInt32` at `offset`.
    @inline(__always)
    func uint32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
