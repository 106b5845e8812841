import Foundation
import MedViewAWS
import Testing

/// The public event-stream vectors in `shared/vectors/eventstream/{aws-sdk-go,botocore}`.
/// Every case runs; none is skipped. botocore's 25 MiB `INVALID_PAYLOAD_LENGTH` case, which was
/// not copied into the vectors, is regenerated in `EventStreamDecoderTests`.
@Suite(.enabled(if: Vectors.available, "shared/vectors not found next to the repository (set MEDVIEW_VECTORS): event-stream vector tests skipped"))
struct EventStreamVectorTests {
    static let sources = ["aws-sdk-go", "botocore"]
    static let positiveCases: [String] = sources.flatMap { source in
        Vectors.files("eventstream/\(source)/encoded/positive").map { "\(source)/\($0)" }
    }
    static let negativeCases: [String] = sources.flatMap { source in
        Vectors.files("eventstream/\(source)/encoded/negative").map { "\(source)/\($0)" }
    }

    /// The error each negative case must give. The expectation files say `Prelude checksum
    /// mismatch` / `Message checksum mismatch` (aws-sdk-go) or botocore's exception class;
    /// botocore's one `ChecksumMismatch` class is split here into prelude and message.
    static let expectedErrors: [String: (kind: String, upstream: String)] = [
        "aws-sdk-go/corrupted_header_len": ("preludeChecksumMismatch", "Prelude checksum mismatch"),
        "aws-sdk-go/corrupted_headers": ("messageChecksumMismatch", "Message checksum mismatch"),
        "aws-sdk-go/corrupted_length": ("preludeChecksumMismatch", "Prelude checksum mismatch"),
        "aws-sdk-go/corrupted_payload": ("messageChecksumMismatch", "Message checksum mismatch"),
        "botocore/corrupted_header_length": ("preludeChecksumMismatch", "ChecksumMismatch"),
        "botocore/corrupted_headers": ("messageChecksumMismatch", "ChecksumMismatch"),
        "botocore/corrupted_length": ("preludeChecksumMismatch", "ChecksumMismatch"),
        "botocore/corrupted_payload": ("messageChecksumMismatch", "ChecksumMismatch"),
        "botocore/duplicate_header": ("duplicateHeader", "DuplicateHeader"),
        "botocore/invalid_headers_length": ("headersTooLong", "InvalidHeadersLength"),
    ]

    @Test("all 14 positive and 10 negative cases are present")
    func casesPresent() {
        #expect(Self.positiveCases.count == 14)
        #expect(Self.negativeCases.count == 10)
        #expect(Set(Self.negativeCases) == Set(Self.expectedErrors.keys))
    }

    @Test("positive vectors decode to the fields of the JSON and re-encode to the same bytes", arguments: positiveCases)
    func positive(_ name: String) throws {
        let (source, file) = split(name)
        let encoded = try Vectors.bytes("eventstream/\(source)/encoded/positive/\(file)")
        let expected = try JSONDecoder().decode(DecodedVector.self, from: Data(try Vectors.bytes("eventstream/\(source)/decoded/positive/\(file)")))

        var decoder = EventStreamDecoder()
        try decoder.append(encoded)
        let frame = try #require(try decoder.nextFrame())
        #expect(try decoder.nextFrame() == nil)
        try decoder.finish()

        #expect(frame.totalLength == expected.total_length)
        #expect(frame.headersLength == expected.headers_length)
        #expect(frame.preludeCRC == UInt32(truncatingIfNeeded: expected.prelude_crc))
        #expect(frame.messageCRC == UInt32(truncatingIfNeeded: expected.message_crc))
        #expect(frame.message.headers == (try expected.headers.map { try $0.header() }))
        #expect(frame.message.payload == (try #require(base64(expected.payload))))

        #expect(try EventStreamEncoder().encode(frame.message) == encoded)

        // One byte at a time gives the same frame, and nothing before the last byte.
        var slow = EventStreamDecoder()
        for (index, byte) in encoded.enumerated() {
            try slow.append(CollectionOfOne(byte))
            let next = try slow.nextFrame()
            #expect((next == nil) == (index < encoded.count - 1))
            if let next { #expect(next == frame) }
        }
        try slow.finish()
    }

    @Test("negative vectors give the expected typed error, whole or byte by byte, and the decoder stays failed", arguments: negativeCases)
    func negative(_ name: String) throws {
        let (source, file) = split(name)
        let encoded = try Vectors.bytes("eventstream/\(source)/encoded/negative/\(file)")
        let upstream = try Vectors.text("eventstream/\(source)/decoded/negative/\(file)").trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = try #require(Self.expectedErrors[name])
        #expect(upstream == expected.upstream)

        var decoder = EventStreamDecoder()
        var caught: EventStreamError?
        do {
            try decoder.append(encoded)
            while try decoder.next() != nil {}
        } catch {
            caught = error
        }
        let error = try #require(caught, "\(name) decoded without error")
        #expect(error.kind == expected.kind)
        // Refuses further input with the same error.
        #expect(throws: error) { try decoder.append([0, 0, 0, 16]) }
        #expect(throws: error) { try decoder.next() }
        #expect(throws: error) { try decoder.finish() }

        var rng = SeededRandom(seed: 1)
        let bytewise = decodeInPieces(encoded, pieces: { _ in 1 }, rng: &rng)
        #expect(bytewise.frames.isEmpty)
        #expect(bytewise.error == error)
    }

    private func split(_ name: String) -> (String, String) {
        let parts = name.split(separator: "/", maxSplits: 1)
        return (String(parts[0]), String(parts[1]))
    }
}

func base64(_ string: String) -> [UInt8]? {
    Data(base64Encoded: string).map(Array.init)
}

/// `decoded/positive/<case>`: aws-sdk-go's JSON form of a message.
struct DecodedVector: Decodable {
    struct Header: Decodable {
        var name: String
        var type: Int
        var value: Scalar

        func header() throws -> EventStreamHeader {
            EventStreamHeader(name: name, value: try headerValue())
        }

        private func headerValue() throws -> EventStreamHeaderValue {
            switch (type, value) {
            case (0, .bool(true)): return .bool(true)
            case (1, .bool(false)): return .bool(false)
            case (2, .int(let v)): return .byte(Int8(v))
            case (3, .int(let v)): return .int16(Int16(v))
            case (4, .int(let v)): return .int32(Int32(v))
            case (5, .int(let v)): return .int64(v)
            case (8, .int(let v)): return .timestamp(milliseconds: v)
            case (6, .string(let b64)): return .byteArray(try #require(base64(b64)))
            case (7, .string(let b64)): return .string(String(decoding: try #require(base64(b64)), as: UTF8.self))
            case (9, .string(let b64)):
                let b = try #require(base64(b64))
                try #require(b.count == 16)
                return .uuid(UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])))
            default:
                throw UnexpectedHeader(type: type)
            }
        }
    }

    enum Scalar: Decodable {
        case bool(Bool), int(Int64), string(String)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int64.self) {
                self = .int(value)
            } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else {
                self = .string(try container.decode(String.self))
            }
        }
    }

    struct UnexpectedHeader: Error { var type: Int }

    var total_length: UInt32
    var headers_length: UInt32
    var prelude_crc: Int64
    var message_crc: Int64
    var headers: [Header]
    var payload: String
}
