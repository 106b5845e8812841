/// A byte-level BPE tokenizer (GGUF `tokenizer.ggml.model = gpt2`) built from a model's metadata.
///
/// Encoding: special tokens (control and user-defined) are cut out of the text first; the rest is
/// split by the pre-tokenizer (for `smollm`/`starcoder`-style models each digit alone, then the
/// GPT-2 pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), each
/// piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte alphabet) and merged by the
/// BPE merge ranks.
public struct Tokenizer: Sendable {
    /// Token texts in the byte alphabet, by id.
    public let tokens: [String]
    /// ggml token types by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public let tokenTypes: [Int32]
    public let bosId: Int32?
    public let eosId: Int32?
    /// Tokens that end a turn (eos, and `<|im_end|>`, `<|endoftext|>`, `<|eot_id|>` when present).
    public let endOfGenerationIds: Set<Int32>
    /// Whether encoding a whole prompt starts with the bos token (`tokenizer.ggml.add_bos_token`).
    public let addBos: Bool
    /// Whether pre-tokenization first splits every digit alone (smollm, starcoder, refact, …).
    public let splitDigits: Bool

    let ids: [String: Int32]
    let mergeRanks: [String: Int]
    /// Special tokens matched in text before BPE, longest first: (UTF-8 bytes, id, is control).
    let specials: [(bytes: [UInt8], id: Int32, control: Bool)]
    let tokenBytes: [[UInt8]]

    /// GPT-2's byte → character alphabet and its inverse.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    public init(gguf: GGUFFile) throws(LocalModelError) {
        let model = gguf.metadata["tokenizer.ggml.model"]?.string ?? ""
        guard model == "gpt2" else { throw .unsupportedTokenizer("model '\(model)'") }
        guard let tokenValues = gguf.metadata["tokenizer.ggml.tokens"]?.array else { throw .unsupportedTokenizer("no tokens") }
        let tokens = tokenValues.compactMap(\.string)
        guard tokens.count == tokenValues.count, !tokens.isEmpty else { throw .unsupportedTokenizer("tokens are not strings") }
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.array?.map { Int32($0.int ?? 1) } ?? Array(repeating: 1, count: tokens.count)
        guard types.count == tokens.count else { throw .unsupportedTokenizer("token_type count differs from tokens") }
        let merges = gguf.metadata["tokenizer.ggml.merges"]?.array?.compactMap(\.string) ?? []
        let pre = gguf.metadata["tokenizer.ggml.pre"]?.string ?? "default"
        func id(_ key: String) -> Int32? {
            guard let v = gguf.metadata[key]?.int, v >= 0, v < tokens.count else { return nil }
            return Int32(v)
        }
        try self.init(
            tokens: tokens, tokenTypes: types, merges: merges,
            bosId: id("tokenizer.ggml.bos_token_id"), eosId: id("tokenizer.ggml.eos_token_id"),
            addBos: gguf.metadata["tokenizer.ggml.add_bos_token"]?.int == 1,
            splitDigits: ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"].contains(pre)
        )
    }

    /// Builds a tokenizer from its parts (tests build small ones).
    public init(tokens: [String], tokenTypes: [Int32], merges: [String], bosId: Int32?, eosId: Int32?, addBos: Bool, splitDigits: Bool) throws(LocalModelError) {
        guard tokenTypes.count == tokens.count else { throw .unsupportedTokenizer("token_type count differs from tokens") }
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.bosId = bosId
        self.eosId = eosId
        self.addBos = addBos
        self.splitDigits = splitDigits
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil {
            ids[t] = Int32(i)
        }
        self.ids = ids
        var ranks: [String: Int] = [:]
        ranks.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() where ranks[merge] == nil {
            ranks[merge] = rank
        }
        mergeRanks = ranks
        var specials: [(bytes: [UInt8], id: Int32, control: Bool)] = []
        for (i, type) in tokenTypes.enumerated() where type == 3 || type == 4 {
            if !tokens[i].isEmpty {
                specials.append((Array(tokens[i].utf8), Int32(i), type == 3))
            }
        }
        // Longest first, so a special token that contains another wins.
        self.specials = specials.sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        var eog = Set<Int32>()
        if let eosId { eog.insert(eosId) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"] {
            if let i = ids[name] { eog.insert(i) }
        }
        endOfGenerationIds = eog
        let inverse = Self.scalarToByte
        tokenBytes = tokens.enumerated().map { i, text in
            if tokenTypes[i] == 3 { return [] }
            if tokenTypes[i] == 4 { return Array(text.utf8) }
            var bytes: [UInt8] = []
            for scalar in text.unicodeScalars {
                if let b = inverse[scalar.value] {
                    bytes.append(b)
                } else {
                    bytes.append(contentsOf: Array(String(scalar).utf8))
                }
            }
            return bytes
        }
    }

    /// The number of tokens in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// The id of a token text, if it is in the vocabulary.
    public func id(of token: String) -> Int32? { ids[token] }

    /// Encodes `text`. With `parseSpecial`, control tokens written in the text (such as
    /// `<|im_start|>`) become their ids; without it only user-defined tokens do, and control-token
    /// text is tokenized as ordinary text (so user input cannot inject turn markers).
    public func encode(_ text: String, parseSpecial: Bool = false) -> [Int32] {
        var out: [Int32] = []
        var fragments: [Fragment] = [.text(Array(text.utf8))]
        for special in specials where parseSpecial || !special.control {
            var next: [Fragment] = []
            for fragment in fragments {
                guard case let .text(bytes) = fragment else {
                    next.append(fragment)
                    continue
                }
                split(bytes, on: special.bytes, id: special.id, into: &next)
            }
            fragments = next
        }
        for fragment in fragments {
            switch fragment {
            case let .token(id): out.append(id)
            case let .text(bytes): encodeOrdinary(bytes, into: &out)
            }
        }
        return out
    }

    /// The bytes a token stands for (empty for control tokens).
    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < tokenBytes.count else { return [] }
        return tokenBytes[Int(id)]
    }

    /// Decodes ids to text (control tokens are dropped; invalid UTF-8 becomes U+FFFD).
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes.append(contentsOf: self.bytes(of: id)) }
        return String(decoding: bytes, as: UTF8.self)
    }

    private enum Fragment {
        case text([UInt8])
        case token(Int32)
    }

    private func split(_ bytes: [UInt8], on needle: [UInt8], id: Int32, into out: inout [Fragment]) {
        var start = 0
        var i = 0
        let n = needle.count
        while i + n <= bytes.count {
            if bytes[i] == needle[0], bytes[i..<(i + n)].elementsEqual(needle) {
                if i > start { out.append(.text(Array(bytes[start..<i]))) }
                out.append(.token(id))
                i += n
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { out.append(.text(Array(bytes[start...]))) }
    }

    private func encodeOrdinary(_ bytes: [UInt8], into out: inout [Int32]) {
        let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        for piece in PreTokenizer.split(scalars, splitDigits: splitDigits) {
            bpe(piece, into: &out)
        }
    }

    /// Merges one pre-tokenized piece by rank and appends its ids.
    private func bpe(_ piece: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        var utf8: [UInt8] = []
        for s in piece { utf8.append(contentsOf: Array(String(s).utf8)) }
        let alphabet = Self.byteToScalar
        var symbols = utf8.map { String(alphabet[Int($0)]) }
        if symbols.count > 1 {
            while true {
                var best = Int.max
                var bestIndex = -1
                for i in 0..<(symbols.count - 1) {
                    if let rank = mergeRanks[symbols[i] + " " + symbols[i + 1]], rank < best {
                        best = rank
                        bestIndex = i
                    }
                }
                if bestIndex < 0 { break }
                symbols[bestIndex] += symbols[bestIndex + 1]
                symbols.remove(at: bestIndex + 1)
                if symbols.count == 1 { break }
            }
        }
        for symbol in symbols {
            if let id = ids[symbol] {
                out.append(id)
            } else {
                // Not in the vocabulary: fall back to one token per byte where the byte exists.
                for scalar in symbol.unicodeScalars {
                    if let id = ids[String(scalar)] { out.append(id) }
                }
            }
        }
    }
}

/// The GPT-2 style pre-tokenizer over Unicode scalars.
enum PreTokenizer {
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// Pieces of `text`, in order; their concatenation is `text`.
    static func split(_ text: [Unicode.Scalar], splitDigits: Bool) -> [ArraySlice<Unicode.Scalar>] {
        var pieces: [ArraySlice<Unicode.Scalar>] = []
        guard splitDigits else {
            gpt2(text[...], into: &pieces)
            return pieces
        }
        var start = 0
        for (i, s) in text.enumerated() where isNumber(s) {
            if i > start { gpt2(text[start..<i], into: &pieces) }
            pieces.append(text[i..<(i + 1)])
            start = i + 1
        }
        if start < text.count { gpt2(text[start...], into: &pieces) }
        return pieces
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` over one fragment.
    static func gpt2(_ text: ArraySlice<Unicode.Scalar>, into pieces: inout [ArraySlice<Unicode.Scalar>]) {
        var pos = text.startIndex
        let end = text.endIndex
        func at(_ i: Int) -> Unicode.Scalar? { i < end ? text[i] : nil }
        while pos < end {
            let c = text[pos]
            if c == "'", let n = at(pos + 1) {
                if n == "s" || n == "t" || n == "m" || n == "d" {
                    pieces.append(text[pos..<(pos + 2)])
                    pos += 2
                    continue
                }
                if let n2 = at(pos + 2), (n == "r" && n2 == "e") || (n == "v" && n2 == "e") || (n == "l" && n2 == "l") {
                    pieces.append(text[pos..<(pos + 3)])
                    pos += 3
                    continue
                }
            }
            var p = pos
            if c == " ", at(pos + 1) != nil { p += 1 }
            let first = text[p]
            if isLetter(first) {
                var e = p + 1
                while e < end, isLetter(text[e]) { e += 1 }
                pieces.append(text[pos..<e])
                pos = e
                continue
            }
            if isNumber(first) {
                var e = p + 1
                while e < end, isNumber(text[e]) { e += 1 }
                pieces.append(text[pos..<e])
                pos = e
                continue
            }
            if !isSpace(first) {
                var e = p + 1
                while e < end, !isSpace(text[e]), !isLetter(text[e]), !isNumber(text[e]) { e += 1 }
                pieces.append(text[pos..<e])
                pos = e
                continue
            }
            var e = pos
            while e < end, isSpace(text[e]) { e += 1 }
            if e - pos > 1, e < end {
                // \s+(?!\S): leave the last whitespace to prefix the next word.
                pieces.append(text[pos..<(e - 1)])
                pos = e - 1
                continue
            }
            if e > pos {
                pieces.append(text[pos..<e])
                pos = e
                continue
            }
            pieces.append(text[pos..<(pos + 1)])
            pos += 1
        }
    }
}
