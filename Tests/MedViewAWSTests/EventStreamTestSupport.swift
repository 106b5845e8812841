import Foundation
import MedViewAWS

/// Random event-stream messages covering every header type, for round-trip, fuzz and
/// differential tests.
enum RandomMessages {
    static let names = [
        ":event-type", ":content-type", ":message-type", ":exception-type", ":error-code", ":error-message",
        "x", "flag", "count", "trace-id", "número", "ሴ", "emoji-😀", String(repeating: "n", count: 255),
    ]

    static func value(using rng: inout SeededRandom) -> EventStreamHeaderValue {
        switch Int.random(in: 0...9, using: &rng) {
        case 0: return .bool(true)
        case 1: return .bool(false)
        case 2: return .byte(Int8.random(in: .min ... .max, using: &rng))
        case 3: return .int16(Int16.random(in: .min ... .max, using: &rng))
        case 4: return .int32(Int32.random(in: .min ... .max, using: &rng))
        case 5: return .int64(Int64.random(in: .min ... .max, using: &rng))
        case 6: return .byteArray(bytes(Int.random(in: 0...40, using: &rng), using: &rng))
        case 7: return .string(text(Int.random(in: 0...30, using: &rng), using: &rng))
        case 8: return .timestamp(milliseconds: Int64.random(in: -4_000_000_000_000 ... 8_000_000_000_000, using: &rng))
        default:
            let b = bytes(16, using: &rng)
            return .uuid(UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])))
        }
    }

    static func message(using rng: inout SeededRandom, maxPayload: Int = 300) -> EventStreamMessage {
        var headers: [EventStreamHeader] = []
        var used = Set<String>()
        for _ in 0..<Int.random(in: 0...8, using: &rng) {
            let name = Bool.random(using: &rng) ? names.randomElement(using: &rng)! : text(Int.random(in: 1...12, using: &rng), using: &rng)
            guard name.utf8.count <= 255, used.insert(name).inserted else { continue }
            headers.append(EventStreamHeader(name: name, value: value(using: &rng)))
        }
        return EventStreamMessage(headers: headers, payload: bytes(Int.random(in: 0...maxPayload, using: &rng), using: &rng))
    }

    static func bytes(_ count: Int, using rng: inout SeededRandom) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// Text mixing ASCII, Latin, Ethiopic and astral characters.
    static func text(_ count: Int, using rng: inout SeededRandom) -> String {
        let alphabet: [Character] = Array("abcXYZ019 -_:/{}\"\\é ሴ😀\t")
        return String((0..<count).map { _ in alphabet.randomElement(using: &rng)! })
    }
}

/// Feeds `bytes` to a fresh decoder in pieces of the given sizes (the last piece takes the
/// rest) and collects frames until the end or the first error.
func decodeInPieces(_ bytes: [UInt8], pieces: (inout SeededRandom) -> Int, rng: inout SeededRandom, finish: Bool = true) -> (frames: [EventStreamFrame], error: EventStreamError?) {
    var decoder = EventStreamDecoder()
    var frames: [EventStreamFrame] = []
    var offset = 0
    do {
        while offset < bytes.count {
            let end = min(bytes.count, offset + max(1, pieces(&rng)))
            try decoder.append(bytes[offset..<end])
            offset = end
            while let frame = try decoder.nextFrame() {
                frames.append(frame)
            }
        }
        if finish { try decoder.finish() }
        return (frames, nil)
    } catch {
        return (frames, error)
    }
}

extension EventStreamError {
    /// The case name, for comparisons that ignore the associated values.
    var kind: String {
        switch self {
        case .preludeChecksumMismatch: "preludeChecksumMismatch"
        case .messageChecksumMismatch: "messageChecksumMismatch"
        case .messageTooShort: "messageTooShort"
        case .inconsistentLengths: "inconsistentLengths"
        case .headersTooLong: "headersTooLong"
        case .payloadTooLong: "payloadTooLong"
        case .duplicateHeader: "duplicateHeader"
        case .truncatedHeader: "truncatedHeader"
        case .unknownHeaderType: "unknownHeaderType"
        case .invalidUTF8: "invalidUTF8"
        case .truncatedStream: "truncatedStream"
        case .invalidHeaderName: "invalidHeaderName"
        case .headerValueTooLong: "headerValueTooLong"
        }
    }
}
