import MedViewProtocol

/// Reads the few string fields a streaming delta needs from a JSON object without building a
/// tree: top-level string fields, and string fields of one nested object (`delta`).
///
/// It is the fast path for the events that come once per delta: Bedrock's `contentBlockDelta` and
/// InvokeModel `chunk` wrapper, Anthropic's `content_block_delta` (over Bedrock and over SSE), and
/// OpenAI-compatible `chat.completion.chunk`s.
/// Anything it does not fully understand — malformed JSON, invalid UTF-8, lone surrogates — gives
/// `nil`, and the caller falls back to `JSONDecoder`, so it never accepts what the decoder would
/// refuse in a way that changes the result.
struct DeltaJSONScanner {
    /// The string fields found: top-level ones by name, and the nested object's by name.
    struct Fields {
        var top: [String: String] = [:]
        var nested: [String: String] = [:]
        var hasNested = false
    }

    /// Scans `bytes` (one JSON object), keeping top-level string fields named in `top` and the
    /// string fields named in `nestedFields` of the object at top-level key `nestedKey`.
    static func scan(_ bytes: [UInt8], top: Set<String>, nestedKey: String, nestedFields: Set<String>) -> Fields? {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = Cursor(bytes: buffer)
            var fields = Fields()
            guard scanner.object({ name, cursor in
                let key = name.string
                if key == nestedKey {
                    cursor.skipWhitespace()
                    guard cursor.peek == UInt8(ascii: "{") else { return cursor.skipValue() }
                    fields.hasNested = true
                    return cursor.object { name, cursor in
                        let inner = name.string
                        if nestedFields.contains(inner) {
                            cursor.skipWhitespace()
                            if cursor.peek == UInt8(ascii: "\"") {
                                guard let value = cursor.string() else { return false }
                                fields.nested[inner] = value
                                return true
                            }
                        }
                        return cursor.skipValue()
                    }
                }
                if top.contains(key) {
                    cursor.skipWhitespace()
                    if cursor.peek == UInt8(ascii: "\"") {
                        guard let value = cursor.string() else { return false }
                        fields.top[key] = value
                        return true
                    }
                }
                return cursor.skipValue()
            }) else { return nil }
            scanner.skipWhitespace()
            return scanner.atEnd ? fields : nil
        }
    }

    /// What an Anthropic `content_block_delta` event says.
    enum AnthropicDelta: Equatable {
        /// A `text_delta` with non-empty text.
        case text(String)
        /// A delta that carries no text for the patient (empty text, thinking, tool input).
        case nothing
    }

    /// Reads an Anthropic `content_block_delta` event (`{"type":"content_block_delta","index":0,
    /// "delta":{"type":"text_delta","text":"…"}}`); nil for any other event or anything not fully
    /// understood (the caller then decodes it properly).
    /// Field types are checked as strictly as the decoder checks them: a number where a string
    /// belongs gives nil, not a quietly skipped field.
    static func anthropicContentDelta(_ bytes: [UInt8]) -> AnthropicDelta? {
        bytes.withUnsafeBufferPointer { anthropicContentDelta($0) }
    }

    /// ``anthropicContentDelta(_:)-([UInt8])`` over bytes held elsewhere.
    static func anthropicContentDelta(_ buffer: UnsafeBufferPointer<UInt8>) -> AnthropicDelta? {
        do {
            var cursor = Cursor(bytes: buffer)
            var type: String?
            var deltaType: String?
            var text: String?
            guard cursor.object({ key, cursor in
                switch key {
                case "type":
                    return cursor.optionalString(into: &type)
                case "delta":
                    cursor.skipWhitespace()
                    if cursor.literal("null") { return true }
                    return cursor.object { key, cursor in
                        switch key {
                        case "type": return cursor.optionalString(into: &deltaType)
                        case "text": return cursor.optionalString(into: &text)
                        default: return cursor.skipValue()
                        }
                    }
                case "message", "usage", "error":
                    // Not part of a content delta; anything but null goes to the decoder.
                    cursor.skipWhitespace()
                    return cursor.literal("null")
                default:
                    return cursor.skipValue()
                }
            }) else { return nil }
            cursor.skipWhitespace()
            guard cursor.atEnd, type == "content_block_delta" else { return nil }
            if deltaType == "text_delta", let text, !text.isEmpty { return .text(text) }
            return .nothing
        }
    }

    /// What an ordinary OpenAI-compatible stream chunk (or whole reply) says: the text of choice 0
    /// and its finish reason (either may be absent), and the token counts of a `usage` object.
    struct OpenAIChunk: Equatable {
        var text: String?
        var finishReason: String?
        /// The counts of a non-null `usage` object; nil when it has neither count (or is absent).
        var usage: Usage?
        /// Whether a choice with index 0 was there.
        var hasChoice = false
    }

    /// Reads a `chat.completion.chunk` (`{"id":…,"choices":[{"index":0,"delta":{"content":"…"},
    /// "finish_reason":null}]}`), or with `choiceKey` `message` a whole `chat.completion`: the first
    /// choice with index 0 (or none), its `content` and `finish_reason`, and `usage`'s
    /// `prompt_tokens` and `completion_tokens`. Nil when the object carries anything else that
    /// matters — an `error`, `"object":"error"`, a field of an unexpected type, a count that is not
    /// a plain whole number — or is not valid JSON: the caller decodes those properly.
    static func openAIChunk(_ bytes: [UInt8], choiceKey: String = "delta") -> OpenAIChunk? {
        bytes.withUnsafeBufferPointer { openAIChunk($0, choiceKey: choiceKey) }
    }

    /// ``openAIChunk(_:choiceKey:)-([UInt8],_)`` over bytes held elsewhere.
    static func openAIChunk(_ buffer: UnsafeBufferPointer<UInt8>, choiceKey: String = "delta") -> OpenAIChunk? {
        do {
            var cursor = Cursor(bytes: buffer)
            var result = OpenAIChunk()
            var promptTokens: Int?
            var completionTokens: Int?
            guard cursor.object({ key, cursor in
                switch key {
                case "choices":
                    cursor.skipWhitespace()
                    if cursor.literal("null") { return true }
                    return cursor.array { cursor in
                        var index = 0
                        var choice = OpenAIChunk()
                        guard cursor.object({ key, cursor in
                            switch key {
                            case "index":
                                guard let value = cursor.integer() else { return false }
                                index = value
                                return true
                            case _ where key.matches(choiceKey):
                                cursor.skipWhitespace()
                                if cursor.literal("null") { return true }
                                return cursor.object { key, cursor in
                                    guard key == "content" else { return cursor.skipValue() }
                                    return cursor.optionalString(into: &choice.text)
                                }
                            case "finish_reason":
                                return cursor.optionalString(into: &choice.finishReason)
                            default:
                                return cursor.skipValue()
                            }
                        }) else { return false }
                        if index == 0, !result.hasChoice {
                            result.text = choice.text
                            result.finishReason = choice.finishReason
                            result.hasChoice = true
                        }
                        return true
                    }
                case "usage":
                    cursor.skipWhitespace()
                    if cursor.literal("null") { return true }
                    // A count given twice goes to the decoder (which keeps the first).
                    var seenPrompt = false
                    var seenCompletion = false
                    return cursor.object { key, cursor in
                        switch key {
                        case "prompt_tokens":
                            guard !seenPrompt else { return false }
                            seenPrompt = true
                            return cursor.optionalInteger(into: &promptTokens)
                        case "completion_tokens":
                            guard !seenCompletion else { return false }
                            seenCompletion = true
                            return cursor.optionalInteger(into: &completionTokens)
                        default: return cursor.skipValue()
                        }
                    }
                case "type":
                    var type: String?
                    return cursor.optionalString(into: &type)
                case "error", "code":
                    // Only an explicit null is ordinary; anything else goes to the decoder.
                    cursor.skipWhitespace()
                    return cursor.literal("null")
                case "object":
                    var object: String?
                    guard cursor.optionalString(into: &object) else { return false }
                    return object != "error"
                default:
                    return cursor.skipValue()
                }
            }) else { return nil }
            cursor.skipWhitespace()
            guard cursor.atEnd else { return nil }
            if promptTokens != nil || completionTokens != nil {
                result.usage = Usage(inputTokens: promptTokens ?? 0, outputTokens: completionTokens ?? 0)
            }
            return result
        }
    }

    struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        var atEnd: Bool { index >= bytes.count }
        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8) -> Bool {
            skipWhitespace()
            guard peek == byte else { return false }
            index += 1
            return true
        }

        /// Walks an object, calling `member` with each key and the cursor before its value;
        /// `member` must consume the value and return `false` on malformed input. A key that is
        /// not plain ASCII without escapes is not understood (the caller's decoder reads those).
        mutating func object(_ member: (Key, inout Cursor) -> Bool) -> Bool {
            guard expect(UInt8(ascii: "{")) else { return false }
            skipWhitespace()
            if peek == UInt8(ascii: "}") { index += 1; return true }
            while true {
                skipWhitespace()
                guard peek == UInt8(ascii: "\""), let key = key(), expect(UInt8(ascii: ":")) else { return false }
                guard member(key, &self) else { return false }
                skipWhitespace()
                guard let next = peek else { return false }
                index += 1
                if next == UInt8(ascii: "}") { return true }
                guard next == UInt8(ascii: ",") else { return false }
            }
        }

        /// Reads a key at the cursor (on its opening quote) as its bytes, without making a
        /// string; nil for a key with an escape, a control character or a non-ASCII byte.
        mutating func key() -> Key? {
            index += 1
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    defer { index += 1 }
                    return Key(bytes: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 || byte >= 0x80 { return nil }
                index += 1
            }
            return nil
        }

        /// Skips a string at the cursor (on its opening quote): plain ASCII without escapes is
        /// only scanned; anything else is read as ``string()`` reads it, with the same checks.
        mutating func skipString() -> Bool {
            let start = index
            index += 1
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return true
                }
                if byte == UInt8(ascii: "\\") || byte >= 0x80 {
                    index = start
                    return string() != nil
                }
                if byte < 0x20 { return false }
                index += 1
            }
            return false
        }

        /// Skips a number at the cursor if it is one as JSON writes numbers (`-`, digits without
        /// a leading zero, a fraction, an exponent), followed by a delimiter or the end.
        mutating func skipNumber() -> Bool {
            var i = index
            func digits() -> Bool {
                let from = i
                while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
                return i > from
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count else { return false }
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                guard digits() else { return false }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() else { return false }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() else { return false }
            }
            if i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: break
                default: return false
                }
            }
            index = i
            return true
        }

        /// Reads a string at the cursor (which is on its opening quote), decoding escapes.
        mutating func string() -> String? {
            guard peek == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            // Fast path: no escapes.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                    index += 1
                    return String(validUTF8: slice)
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { return nil }
                index += 1
            }
            guard index < bytes.count else { return nil }
            var out: [UInt8] = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return out.withUnsafeBufferPointer { String(validUTF8: $0) }
                case UInt8(ascii: "\\"):
                    guard let escape = peek else { return nil }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var code = hex4() else { return nil }
                        if (0xD800...0xDBFF).contains(code) {
                            guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else { return nil }
                            index += 2
                            guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(code) {
                            return nil
                        }
                        guard let scalar = Unicode.Scalar(code) else { return nil }
                        out.append(contentsOf: UTF8.encode(scalar)!)
                    default:
                        return nil
                    }
                default:
                    if byte < 0x20 { return nil }
                    out.append(byte)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                index += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        /// Consumes `word` (a literal such as `null`) if it is next, followed by a delimiter.
        mutating func literal(_ word: StaticString) -> Bool {
            skipWhitespace()
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            let text = UnsafeBufferPointer(start: word.utf8Start, count: count)
            for i in 0..<count where bytes[index + i] != text[i] { return false }
            if index + count < bytes.count {
                switch bytes[index + count] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: break
                default: return false
                }
            }
            index += count
            return true
        }

        /// A string value, or `null` (leaving `value` nil); `false` for anything else.
        mutating func optionalString(into value: inout String?) -> Bool {
            skipWhitespace()
            if literal("null") {
                value = nil
                return true
            }
            guard peek == UInt8(ascii: "\""), let text = string() else { return false }
            value = text
            return true
        }

        /// A whole number as ``integer()`` reads it, or `null` (leaving `value` nil); `false` for anything else.
        mutating func optionalInteger(into value: inout Int?) -> Bool {
            skipWhitespace()
            if literal("null") {
                value = nil
                return true
            }
            guard let number = integer() else { return false }
            value = number
            return true
        }

        /// A non-negative integer without sign, fraction or exponent (what an index is); nil otherwise.
        mutating func integer() -> Int? {
            skipWhitespace()
            let start = index
            var value = 0
            while let byte = peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                guard index - start < 9 else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                index += 1
            }
            guard index > start else { return nil }
            if index - start > 1, bytes[start] == UInt8(ascii: "0") { return nil }
            if let byte = peek {
                switch byte {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: break
                default: return nil
                }
            }
            return value
        }

        /// Walks an array, calling `element` with the cursor before each element; `element` must
        /// consume it and return `false` on malformed input.
        mutating func array(_ element: (inout Cursor) -> Bool) -> Bool {
            guard expect(UInt8(ascii: "[")) else { return false }
            skipWhitespace()
            if peek == UInt8(ascii: "]") { index += 1; return true }
            while true {
                guard element(&self) else { return false }
                skipWhitespace()
                guard let next = peek else { return false }
                index += 1
                if next == UInt8(ascii: "]") { return true }
                guard next == UInt8(ascii: ",") else { return false }
            }
        }

        /// Skips one value of any kind; `false` if it is malformed.
        mutating func skipValue() -> Bool {
            skipWhitespace()
            guard let first = peek else { return false }
            switch first {
            case UInt8(ascii: "\""):
                return skipString()
            case UInt8(ascii: "{"):
                // Any string is a name here: the object is only checked and passed over.
                index += 1
                skipWhitespace()
                if peek == UInt8(ascii: "}") { index += 1; return true }
                while true {
                    skipWhitespace()
                    guard peek == UInt8(ascii: "\""), skipString(), expect(UInt8(ascii: ":")), skipValue() else { return false }
                    skipWhitespace()
                    guard let next = peek else { return false }
                    index += 1
                    if next == UInt8(ascii: "}") { return true }
                    guard next == UInt8(ascii: ",") else { return false }
                }
            case UInt8(ascii: "["):
                return array { $0.skipValue() }
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                return literal("true") || literal("false") || literal("null")
            default:
                return skipNumber()
            }
        }
    }

    /// An object member's name as it is written: plain ASCII, no escapes.
    struct Key {
        let bytes: UnsafeBufferPointer<UInt8>

        /// The name as a string.
        var string: String { String(decoding: bytes, as: UTF8.self) }

        static func == (key: Key, name: StaticString) -> Bool {
            let count = name.utf8CodeUnitCount
            guard key.bytes.count == count else { return false }
            let text = name.utf8Start
            for i in 0..<count where key.bytes[i] != text[i] { return false }
            return true
        }

        /// Whether the key is `name` (a name known only at run time).
        func matches(_ name: String) -> Bool {
            name.utf8.elementsEqual(bytes)
        }

        /// Lets a `switch` over a key match names written as literals.
        static func ~= (name: StaticString, key: Key) -> Bool {
            key == name
        }
    }
}
