import Foundation
import MedViewAWS
import Testing

@Suite struct EventStreamCodecTests {
    // MARK: CRC32

    @Test("CRC32 gives the IEEE check value and agrees across piece boundaries and lengths")
    func crc32() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        // Against a bit-at-a-time reference for every length 0…70 and every split point.
        var rng = SeededRandom(seed: 32)
        let data = RandomMessages.bytes(70, using: &rng)
        for length in 0...data.count {
            let slice = Array(data[..<length])
            let reference = bitwiseCRC32(slice)
            #expect(CRC32.checksum(slice) == reference)
            let split = length / 3
            var incremental = CRC32()
            incremental.update(slice[..<split])
            incremental.update(slice[split...])
            #expect(incremental.value == reference)
        }
    }

    private func bitwiseCRC32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    // MARK: Round trips and piecewise feeding

    @Test("every header type round-trips through encoder and decoder, bytes identical")
    func roundTrip() throws {
        var rng = SeededRandom(seed: 7)
        let encoder = EventStreamEncoder()
        var seenTypes = Set<UInt8>()
        for _ in 0..<500 {
            let message = RandomMessages.message(using: &rng)
            message.headers.forEach { seenTypes.insert($0.value.wireType) }
            let bytes = try encoder.encode(message)
            let decoded = try EventStreamDecoder.decodeAll(bytes)
            #expect(decoded == [message])
            #expect(try encoder.encode(decoded[0]) == bytes)
        }
        #expect(seenTypes == Set(0...9))
    }

    @Test("a stream fed one byte at a time, or split at random points, gives the same messages")
    func randomSplits() throws {
        var rng = SeededRandom(seed: 0x5EED)
        var messages = (0..<120).map { _ in RandomMessages.message(using: &rng) }
        messages += Self.vectorMessages()
        messages.shuffle(using: &rng)
        let stream = try EventStreamEncoder().encode(messages)

        let bytewise = decodeInPieces(stream, pieces: { _ in 1 }, rng: &rng)
        #expect(bytewise.error == nil)
        #expect(bytewise.frames.map(\.message) == messages)

        for seed in 1...40 {
            var splitter = SeededRandom(seed: UInt64(seed))
            let maximum = [2, 7, 64, 700, 9000][seed % 5]
            let result = decodeInPieces(stream, pieces: { Int.random(in: 1...maximum, using: &$0) }, rng: &splitter)
            #expect(result.error == nil)
            #expect(result.frames.map(\.message) == messages, "seed \(seed)")
        }
    }

    /// The positive vectors' messages (empty if the vectors are absent).
    static func vectorMessages() -> [EventStreamMessage] {
        ["aws-sdk-go", "botocore"].flatMap { source in
            Vectors.files("eventstream/\(source)/encoded/positive").compactMap { file in
                (try? Vectors.bytes("eventstream/\(source)/encoded/positive/\(file)")).flatMap { try? EventStreamDecoder.decodeAll($0).first }
            }
        }
    }

    // MARK: Limits and malformed input (each a distinct typed error)

    /// A message whose prelude carries `total` and `headers` with a correct prelude CRC, and a
    /// correct message CRC over `body`.
    private func frame(total: UInt32, headers: UInt32, body: [UInt8] = []) -> [UInt8] {
        var bytes: [UInt8] = []
        for value in [total, headers] { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
        let preludeCRC = CRC32.checksum(bytes)
        withUnsafeBytes(of: preludeCRC.bigEndian) { bytes += $0 }
        bytes += body
        let messageCRC = CRC32.checksum(bytes)
        withUnsafeBytes(of: messageCRC.bigEndian) { bytes += $0 }
        return bytes
    }

    private func decodeError(_ bytes: [UInt8]) -> EventStreamError? {
        do {
            _ = try EventStreamDecoder.decodeAll(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test("botocore's INVALID_PAYLOAD_LENGTH case is rejected from its prelude alone")
    func payloadTooLong() throws {
        // botocore's INVALID_PAYLOAD_LENGTH, not copied into the vectors, rebuilt from the README:
        // prelude 01 80 00 21 | 00 00 00 00 | dd 3f 33 b1, then 24 MiB + 1 bytes of "0", then
        // 2a b4 c5 a5. The prelude's total (0x01800021) claims a payload of 24 MiB + 17 bytes,
        // 16 more than follow; like botocore, the decoder rejects it from the prelude, before
        // any payload byte matters.
        let limit = 24 * 1024 * 1024
        let prelude: [UInt8] = [0x01, 0x80, 0x00, 0x21, 0, 0, 0, 0, 0xDD, 0x3F, 0x33, 0xB1]
        let expected = EventStreamError.payloadTooLong(length: limit + 17, limit: limit)
        var decoder = EventStreamDecoder()
        try decoder.append(prelude)
        #expect(throws: expected) { try decoder.next() }
        let literal = prelude + [UInt8](repeating: UInt8(ascii: "0"), count: limit + 1) + [0x2A, 0xB4, 0xC5, 0xA5]
        #expect(decodeError(literal) == expected)

        // A well-formed message one byte over the limit: the encoder refuses it, and written
        // with a raised limit, the default decoder refuses it.
        let big = EventStreamMessage(payload: [UInt8](repeating: UInt8(ascii: "0"), count: limit + 1))
        #expect(throws: EventStreamError.payloadTooLong(length: limit + 1, limit: limit)) {
            try EventStreamEncoder().encode(big)
        }
        let encoded = try EventStreamEncoder(limits: .init(maxHeadersLength: 128 * 1024, maxPayloadLength: 2 * limit)).encode(big)
        #expect(decodeError(encoded) == .payloadTooLong(length: limit + 1, limit: limit))
        // Exactly at the limit is accepted.
        let atLimit = try EventStreamEncoder().encode(EventStreamMessage(payload: [UInt8](repeating: 7, count: limit)))
        #expect(try EventStreamDecoder.decodeAll(atLimit).first?.payload.count == limit)
    }

    @Test("length errors are caught at the prelude, before the body is waited for")
    func lengthErrors() throws {
        #expect(decodeError(frame(total: 15, headers: 0)) == .messageTooShort(totalLength: 15))
        #expect(decodeError(frame(total: 0, headers: 0)) == .messageTooShort(totalLength: 0))
        #expect(decodeError(frame(total: 20, headers: 5, body: [0, 0, 0, 0])) == .inconsistentLengths(totalLength: 20, headersLength: 5))
        #expect(decodeError(frame(total: 16 + 131_073, headers: 131_073)) == .headersTooLong(length: 131_073, limit: 131_072))
        // Only the 12 prelude bytes are needed to reject each of these.
        for (total, headers) in [(UInt32(10), UInt32(0)), (40, 30), (200_000, 131_073), (0xFFFF_FFFF, 0)] {
            var decoder = EventStreamDecoder()
            try decoder.append(frame(total: total, headers: headers).prefix(12))
            #expect(throws: EventStreamError.self) { try decoder.next() }
        }
        // A stream ending inside a message.
        var decoder = EventStreamDecoder()
        try decoder.append(try EventStreamEncoder().encode(EventStreamMessage(payload: [1, 2, 3])).dropLast())
        #expect(try decoder.next() == nil)
        #expect(throws: EventStreamError.truncatedStream(bufferedBytes: 18)) { try decoder.finish() }
        #expect(throws: EventStreamError.truncatedStream(bufferedBytes: 18)) { try decoder.append([0]) }
    }

    @Test("malformed headers behind valid checksums give their own errors")
    func headerErrors() {
        // name length 5 but 2 bytes left
        #expect(decodeError(frame(total: 19, headers: 3, body: [5, 0x61, 0x62])) == .truncatedHeader(offset: 0))
        // unknown type 10
        #expect(decodeError(frame(total: 19, headers: 3, body: [1, 0x61, 10])) == .unknownHeaderType(10, offset: 0))
        // int32 with 2 bytes
        #expect(decodeError(frame(total: 21, headers: 5, body: [1, 0x61, 4, 0, 0])) == .truncatedHeader(offset: 0))
        // string claiming 9 bytes, 1 present
        #expect(decodeError(frame(total: 22, headers: 6, body: [1, 0x61, 7, 0, 9, 0x61])) == .truncatedHeader(offset: 0))
        // invalid UTF-8 in a name, then in a string value
        #expect(decodeError(frame(total: 19, headers: 3, body: [1, 0xFF, 0])) == .invalidUTF8(offset: 0))
        #expect(decodeError(frame(total: 25, headers: 9, body: [1, 0x61, 0, 1, 0x62, 7, 0, 1, 0xC0])) == .invalidUTF8(offset: 3))
        // the same name twice
        #expect(decodeError(frame(total: 22, headers: 6, body: [1, 0x61, 0, 1, 0x61, 1])) == .duplicateHeader(name: "a"))
    }

    @Test("header strings are accepted exactly when they are valid UTF-8 (same verdict as the standard library)")
    func utf8Validation() throws {
        var rng = SeededRandom(seed: 0x07F8)
        // Byte soup biased towards UTF-8 structure: ASCII, lead bytes, continuation bytes and
        // the edge values of overlong forms, surrogates and U+10FFFF.
        let pool: [UInt8] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
        var accepted = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...12, using: &rng)
            let value = (0..<count).map { _ in Bool.random(using: &rng) ? pool.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng) }
            let body: [UInt8] = [1, 0x73, 7, 0, UInt8(count)] + value
            let bytes = frame(total: UInt32(16 + body.count), headers: UInt32(body.count), body: body)
            let reference = String(validating: value, as: UTF8.self)
            switch Result(catching: { () throws(EventStreamError) in try EventStreamDecoder.decodeAll(bytes) }) {
            case .success(let messages):
                #expect(reference != nil, "accepted invalid UTF-8 \(value)")
                #expect(messages.first?.string("s").map { Array($0.utf8) } == value)
                accepted += 1
            case .failure(let error):
                #expect(reference == nil, "rejected valid UTF-8 \(value)")
                #expect(error == .invalidUTF8(offset: 0))
            }
        }
        #expect(accepted > 1_000)
    }

    @Test("duplicate names are found among many headers, and the encoder refuses them too")
    func duplicates() throws {
        var headers = (0..<40).map { EventStreamHeader(name: "h\($0)", value: .bool(true)) }
        headers.append(EventStreamHeader(name: "h3", value: .int32(1)))
        let message = EventStreamMessage(headers: headers)
        #expect(throws: EventStreamError.duplicateHeader(name: "h3")) { try EventStreamEncoder().encode(message) }
        // Hand-encode it to reach the decoder.
        var body: [UInt8] = []
        for header in headers {
            body += [UInt8(header.name.utf8.count)] + Array(header.name.utf8) + [header.value.wireType]
            if case .int32 = header.value { body += [0, 0, 0, 1] }
        }
        #expect(decodeError(frame(total: UInt32(16 + body.count), headers: UInt32(body.count), body: body)) == .duplicateHeader(name: "h3"))
    }

    @Test("the encoder refuses names over 255 bytes and values over 65,535 bytes")
    func encoderLimits() {
        let encoder = EventStreamEncoder()
        let longName = String(repeating: "n", count: 256)
        #expect(throws: EventStreamError.invalidHeaderName(longName)) {
            try encoder.encode(EventStreamMessage(headers: [.init(name: longName, value: .bool(true))]))
        }
        #expect(throws: EventStreamError.headerValueTooLong(name: "s", length: 65_536)) {
            try encoder.encode(EventStreamMessage(headers: [.init(name: "s", value: .string(String(repeating: "x", count: 65_536)))]))
        }
        #expect(throws: EventStreamError.headerValueTooLong(name: "b", length: 70_000)) {
            try encoder.encode(EventStreamMessage(headers: [.init(name: "b", value: .byteArray([UInt8](repeating: 1, count: 70_000)))]))
        }
        // 65,535 is fine, and 255-byte names are.
        #expect(throws: Never.self) {
            try encoder.encode(EventStreamMessage(headers: [
                .init(name: String(repeating: "n", count: 255), value: .string(String(repeating: "x", count: 65_535))),
            ]))
        }
    }

    // MARK: Fuzz

    @Test("random flips, truncations, insertions and deletions never crash: a typed error or valid messages")
    func corruptionFuzz() async throws {
        var rng = SeededRandom(seed: 0xF022)
        var messages = (0..<25).map { _ in RandomMessages.message(using: &rng, maxPayload: 120) }
        messages += Self.vectorMessages()
        let pristine = try EventStreamEncoder().encode(messages)
        var outcomes: [String: Int] = [:]
        for round in 0..<2_500 {
            // Tens of seconds of CPU in a debug build (about 6 ms a round): give the other suites a
            // turn on Swift's pool (two threads on a 2-core machine) every few rounds, so that
            // their loopback exchanges, each a few hops between tasks, are not starved (every 50
            // rounds, a 5 s credentials exchange in another suite once ran out of time).
            if round % 5 == 0 { await Task.yield() }
            var bytes = pristine
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                mutate(&bytes, using: &rng)
            }
            let result = decodeInPieces(bytes, pieces: { Int.random(in: 1...300, using: &$0) }, rng: &rng)
            try checkValid(result.frames, in: bytes)
            outcomes[result.error?.kind ?? "ok", default: 0] += 1
        }
        // Checksums catch nearly everything; the outcomes show the fuzz reached them.
        #expect((outcomes["preludeChecksumMismatch"] ?? 0) > 0)
        #expect((outcomes["messageChecksumMismatch"] ?? 0) > 0)
        #expect((outcomes["truncatedStream"] ?? 0) > 0)
    }

    @Test("garbage headers behind recomputed checksums never crash: a typed error or a valid message")
    func headerFuzz() async throws {
        var rng = SeededRandom(seed: 0xBEEF)
        var outcomes: [String: Int] = [:]
        for round in 0..<3_000 {
            if round % 5 == 0 { await Task.yield() } // as in corruptionFuzz
            let message = RandomMessages.message(using: &rng, maxPayload: 16)
            var headerBytes = Array(try EventStreamEncoder().encode(message).dropFirst(12).dropLast(4 + message.payload.count))
            if headerBytes.isEmpty || Bool.random(using: &rng) {
                headerBytes += RandomMessages.bytes(Int.random(in: 1...20, using: &rng), using: &rng)
            }
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                headerBytes[Int.random(in: 0..<headerBytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            let bytes = frame(total: UInt32(16 + headerBytes.count + message.payload.count), headers: UInt32(headerBytes.count), body: headerBytes + message.payload)
            let result = decodeInPieces(bytes, pieces: { Int.random(in: 1...64, using: &$0) }, rng: &rng)
            try checkValid(result.frames, in: bytes)
            outcomes[result.error?.kind ?? "ok", default: 0] += 1
        }
        for kind in ["ok", "truncatedHeader", "unknownHeaderType", "invalidUTF8"] {
            #expect((outcomes[kind] ?? 0) > 0, "header fuzz never produced \(kind): \(outcomes)")
        }
    }

    /// Each decoded frame re-encodes to exactly the bytes it was read from, in order from the start.
    private func checkValid(_ frames: [EventStreamFrame], in bytes: [UInt8]) throws {
        var offset = 0
        for frame in frames {
            let encoded = try EventStreamEncoder().encode(frame.message)
            #expect(encoded.count == Int(frame.totalLength))
            #expect(offset + encoded.count <= bytes.count)
            guard offset + encoded.count <= bytes.count else { return }
            #expect(Array(bytes[offset..<offset + encoded.count]) == encoded)
            offset += encoded.count
        }
    }

    private func mutate(_ bytes: inout [UInt8], using rng: inout SeededRandom) {
        guard !bytes.isEmpty else {
            bytes = RandomMessages.bytes(20, using: &rng)
            return
        }
        let index = Int.random(in: 0..<bytes.count, using: &rng)
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
        case 1: bytes[index] = UInt8.random(in: 0...255, using: &rng)
        case 2: bytes.removeSubrange(index...)
        case 3: bytes.insert(contentsOf: RandomMessages.bytes(Int.random(in: 1...16, using: &rng), using: &rng), at: index)
        case 4: bytes.removeSubrange(index..<min(bytes.count, index + Int.random(in: 1...32, using: &rng)))
        default:
            // Overwrite a 4-byte field with an extreme length.
            let value = [UInt32(0), 15, 16, 0x7FFF_FFFF, 0xFFFF_FFFF].randomElement(using: &rng)!
            withUnsafeBytes(of: value.bigEndian) { field in
                for (k, byte) in field.enumerated() where index + k < bytes.count { bytes[index + k] = byte }
            }
        }
    }
}
