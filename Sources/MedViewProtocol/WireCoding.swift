import Foundation

/// Limits the protocol states; servers may be configured tighter or looser, and PROTOCOL.md lists the defaults.
public enum ProtocolLimits {
    /// The protocol version in the path (`/v1/...`).
    public static let version = "v1"
    /// The WebSocket subprotocol a client offers.
    public static let subprotocol = "medview.v1"
    /// Prefix of the subprotocol entry that carries a browser's bearer token.
    public static let bearerSubprotocolPrefix = "medview.bearer."
    /// Longest client command id.
    public static let maxCommandIdLength = 128
}

/// Reads `type` and `id` from any JSON object, tolerating wrong types so that a wrongly typed field
/// is reported as `invalid_command` rather than as malformed JSON.
private struct TypeProbe: Decodable {
    var type: String?
    var id: String?
    var hasType = false

    enum CodingKeys: String, CodingKey { case type, id }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hasType = c.contains(.type)
        type = try? c.decode(String.self, forKey: .type)
        id = try? c.decode(String.self, forKey: .id)
    }
}

/// Decodes the JSON body of a command or request, mapping every failure to a typed error.
public func decodeWireBody<T: Decodable>(_ type: T.Type, from data: Data, commandId: String? = nil) throws(CommandDecodingError) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.keyNotFound(key, _) {
        throw CommandDecodingError(code: .invalidCommand, message: "Missing field `\(key.stringValue)`.", commandId: commandId)
    } catch let DecodingError.typeMismatch(_, context) {
        let field = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw CommandDecodingError(code: .invalidCommand, message: "Field `\(field)` has the wrong type.", commandId: commandId)
    } catch let DecodingError.valueNotFound(_, context) {
        let field = context.codingPath.map(\.stringValue).joined(separator: ".")
        throw CommandDecodingError(code: .invalidCommand, message: "Field `\(field)` is null.", commandId: commandId)
    } catch let DecodingError.dataCorrupted(context) where (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil {
        // Valid JSON whose field holds an unusable value (a fraction or an out-of-range number
        // where a whole number is expected): the command is wrong, not the JSON.
        let field = context.codingPath.map(\.stringValue).joined(separator: ".")
        let message = field.isEmpty ? "A field has the wrong type or is out of range." : "Field `\(field)` has the wrong type or is out of range."
        throw CommandDecodingError(code: .invalidCommand, message: message, commandId: commandId)
    } catch DecodingError.dataCorrupted {
        throw CommandDecodingError(code: .malformedJSON, message: "The body is not valid JSON.", commandId: commandId)
    } catch {
        throw CommandDecodingError(code: .invalidCommand, message: "The command is not valid.", commandId: commandId)
    }
}

extension ClientCommand {
    /// Decodes one command from a UTF-8 JSON document, with a typed error for every kind of bad input.
    public static func decode(_ data: Data) throws(CommandDecodingError) -> ClientCommand {
        let decoder = JSONDecoder()
        let probe: TypeProbe
        do {
            probe = try decoder.decode(TypeProbe.self, from: data)
        } catch {
            throw CommandDecodingError(code: .malformedJSON, message: "The frame is not a JSON object.")
        }
        guard let type = probe.type else {
            let message = probe.hasType ? "`type` must be a string." : "The command has no `type`."
            throw CommandDecodingError(code: .invalidCommand, message: message, commandId: probe.id)
        }
        guard let id = probe.id, !id.isEmpty, id.count <= ProtocolLimits.maxCommandIdLength else {
            throw CommandDecodingError(
                code: .invalidCommand,
                message: "The command needs a string `id` of 1 to \(ProtocolLimits.maxCommandIdLength) characters."
            )
        }
        switch type {
        case "chat.send": return .chatSend(try decodeWireBody(ChatSend.self, from: data, commandId: id))
        case "stream.resume":
            let c = try decodeWireBody(StreamResume.self, from: data, commandId: id)
            guard c.after >= 0 else {
                throw CommandDecodingError(code: .invalidCommand, message: "`after` must be 0 or more.", commandId: id)
            }
            return .streamResume(c)
        case "stream.cancel": return .streamCancel(try decodeWireBody(StreamCancel.self, from: data, commandId: id))
        case "auth.refresh": return .authRefresh(try decodeWireBody(AuthRefresh.self, from: data, commandId: id))
        case "ping": return .ping(try decodeWireBody(Ping.self, from: data, commandId: id))
        default:
            throw CommandDecodingError(code: .unknownType, message: "Unknown command type.", commandId: id)
        }
    }

    /// Encodes the command as compact JSON (what clients send).
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        switch self {
        case .chatSend(let c): return try! encoder.encode(c)
        case .streamResume(let c): return try! encoder.encode(c)
        case .streamCancel(let c): return try! encoder.encode(c)
        case .authRefresh(let c): return try! encoder.encode(c)
        case .ping(let c): return try! encoder.encode(c)
        }
    }
}

/// Why an event could not be decoded (client side).
public struct EventDecodingError: Error, Sendable {
    public var message: String
}

extension ServerEvent {
    /// Encodes the event as compact JSON text, as it goes in a WebSocket text frame or an SSE `data:` line.
    public func jsonString() -> String {
        // The events every answer has (its chunks, `stream.start`, `stream.end`, the `ack`) are
        // written directly, as `JSONEncoder` writes them (`WireCodingTests` compares the two).
        if let direct = directJSON() { return direct }
        return String(decoding: encoded(), as: UTF8.self)
    }

    /// The event written without `JSONEncoder`, for the kinds every answer has.
    private func directJSON() -> String? {
        switch self {
        case .streamChunk(let chunk): chunk.jsonString()
        case .streamStart(let start): start.jsonString()
        case .streamEnd(let end): end.jsonString()
        case .ack(let ack) where ack.expiresAt == nil: ack.jsonString()
        default: nil
        }
    }

    /// Encodes the event as compact JSON.
    public func encoded() -> Data {
        if let direct = directJSON() { return Data(direct.utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        // The value types contain only strings, numbers, booleans and arrays of them: encoding cannot fail.
        switch self {
        case .ack(let e): return try! encoder.encode(e)
        case .streamStart(let e): return try! encoder.encode(e)
        case .streamChunk(let e): return try! encoder.encode(e)
        case .safetyAlert(let e): return try! encoder.encode(e)
        case .safetyWarning(let e): return try! encoder.encode(e)
        case .streamEnd(let e): return try! encoder.encode(e)
        case .error(let e): return try! encoder.encode(e)
        }
    }

    /// Decodes an event from JSON (used by clients and tests).
    public static func decode(_ data: Data) throws -> ServerEvent {
        let decoder = JSONDecoder()
        guard let probe = try? decoder.decode(TypeProbe.self, from: data), let type = probe.type else {
            throw EventDecodingError(message: "not an event object")
        }
        switch type {
        case "ack": return .ack(try decoder.decode(Ack.self, from: data))
        case "stream.start": return .streamStart(try decoder.decode(StreamStart.self, from: data))
        case "stream.chunk": return .streamChunk(try decoder.decode(StreamChunk.self, from: data))
        case "safety.alert": return .safetyAlert(try decoder.decode(SafetyAlert.self, from: data))
        case "safety.warning": return .safetyWarning(try decoder.decode(SafetyWarning.self, from: data))
        case "stream.end": return .streamEnd(try decoder.decode(StreamEnd.self, from: data))
        case "error": return .error(try decoder.decode(ErrorEvent.self, from: data))
        default: throw EventDecodingError(message: "unknown event type")
        }
    }

    /// Decodes an event from a JSON string.
    public static func decode(_ text: String) throws -> ServerEvent {
        try decode(Data(text.utf8))
    }
}

/// Writes a JSON object's members in the order given, compact, strings escaped as `JSONEncoder`
/// with `.withoutEscapingSlashes` escapes them (``StreamChunk/appendQuoted(_:to:)``).
struct JSONObjectText {
    private var out = "{"
    private var empty = true

    init(reserving capacity: Int = 0) {
        out.reserveCapacity(capacity)
    }

    private mutating func key(_ name: StaticString) {
        out += empty ? "\"" : ",\""
        empty = false
        name.withUTF8Buffer { out += String(decoding: $0, as: UTF8.self) }
        out += "\":"
    }

    mutating func string(_ name: StaticString, _ value: String) {
        key(name)
        StreamChunk.appendQuoted(value, to: &out)
    }

    mutating func number(_ name: StaticString, _ value: Int) {
        key(name)
        out += String(value)
    }

    mutating func bool(_ name: StaticString, _ value: Bool) {
        key(name)
        out += value ? "true" : "false"
    }

    /// A member whose value is already JSON (a nested object).
    mutating func json(_ name: StaticString, _ value: String) {
        key(name)
        out += value
    }

    /// The object's text (call once, after the last member).
    mutating func text() -> String {
        out += "}"
        return out
    }
}

extension StreamStart {
    /// The event as compact JSON, as `JSONEncoder` writes it.
    func jsonString() -> String {
        var model = JSONObjectText()
        model.string("provider", self.model.provider)
        model.string("id", self.model.id)
        model.bool("demo", self.model.demo)
        var o = JSONObjectText(reserving: 256)
        o.string("type", type)
        o.string("streamId", streamId)
        o.number("seq", seq)
        o.string("conversationId", conversationId)
        o.string("userMessageId", userMessageId)
        o.string("messageId", messageId)
        o.json("model", model.text())
        return o.text()
    }
}

extension StreamEnd {
    /// The event as compact JSON, as `JSONEncoder` writes it (no `usage` when there is none).
    func jsonString() -> String {
        var o = JSONObjectText(reserving: 160)
        o.string("type", type)
        o.string("streamId", streamId)
        o.number("seq", seq)
        o.string("finishReason", finishReason.rawValue)
        if let usage {
            var counts = JSONObjectText()
            counts.number("inputTokens", usage.inputTokens)
            counts.number("outputTokens", usage.outputTokens)
            o.json("usage", counts.text())
        }
        return o.text()
    }
}

extension Ack {
    /// The acknowledgement as compact JSON, as `JSONEncoder` writes it (absent fields left out);
    /// `expiresAt` (a fraction) is left to `JSONEncoder`, so this is for acks without it.
    func jsonString() -> String {
        var o = JSONObjectText(reserving: 160)
        o.string("type", type)
        o.string("id", id)
        if let streamId { o.string("streamId", streamId) }
        if let conversationId { o.string("conversationId", conversationId) }
        if let duplicate { o.bool("duplicate", duplicate) }
        return o.text()
    }
}

extension StreamChunk {
    /// The chunk as compact JSON, keys in declaration order, as `JSONEncoder` with
    /// `.withoutEscapingSlashes` writes it.
    func jsonString() -> String {
        var o = JSONObjectText(reserving: 64 + streamId.utf8.count + text.utf8.count + text.utf8.count / 8)
        o.string("type", type)
        o.string("streamId", streamId)
        o.number("seq", seq)
        o.string("text", text)
        return o.text()
    }

    /// Appends `value` as a JSON string: `"` and `\` escaped, the short escapes for backspace,
    /// form feed, line feed, carriage return and tab, other control characters as `\u00XX`;
    /// everything else (slashes and non-ASCII included) as it is.
    static func appendQuoted(_ value: String, to out: inout String) {
        out += "\""
        let utf8 = value.utf8
        // Fast path: nothing to escape (looked for in the string's own bytes when it has them
        // in one piece, as native strings do: a loop over a buffer, not over string indices).
        let needsEscape: (UInt8) -> Bool = { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }
        if !(utf8.withContiguousStorageIfAvailable { $0.contains(where: needsEscape) } ?? utf8.contains(where: needsEscape)) {
            out += value
            out += "\""
            return
        }
        var run = utf8.startIndex
        var index = utf8.startIndex
        func flush(upTo end: String.Index) {
            if run < end { out += Substring(utf8[run..<end]) }
        }
        while index < utf8.endIndex {
            let byte = utf8[index]
            let escape: String?
            switch byte {
            case 0x22: escape = "\\\""
            case 0x5C: escape = "\\\\"
            case 0x08: escape = "\\b"
            case 0x0C: escape = "\\f"
            case 0x0A: escape = "\\n"
            case 0x0D: escape = "\\r"
            case 0x09: escape = "\\t"
            case 0..<0x20:
                let hex = String(byte, radix: 16)
                escape = "\\u00" + (hex.count == 1 ? "0" : "") + hex
            default: escape = nil
            }
            if let escape {
                flush(upTo: index)
                out += escape
                run = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        flush(upTo: utf8.endIndex)
        out += "\""
    }
}
