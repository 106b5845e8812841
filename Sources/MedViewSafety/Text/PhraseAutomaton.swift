/// An Aho–Corasick automaton over token symbols: finds every occurrence of every pattern (a
/// sequence of symbols) in one left-to-right pass, in time linear in the input plus the number of
/// matches.
///
/// Symbols are small integers assigned by the caller (one per vocabulary word); `-1` stands for
/// a word outside the vocabulary, which no pattern contains, so it sends the automaton back to
/// its root.
///
/// Invariants: state 0 is the root; `depth[s]` is the length of the pattern prefix that state
/// `s` spells; `outputs[s]` lists every pattern that ends at `s`, including those ending at
/// states on its failure chain, longest first.
struct PhraseAutomaton: Sendable {
    /// Goto function: key = state << 32 | symbol.
    private var next: [UInt64: Int32] = [:]
    private var fail: [Int32] = [0]
    private(set) var depth: [Int32] = [0]
    private var outputs: [[Int32]] = [[]]
    /// Length in symbols of each pattern, by pattern id.
    private(set) var patternLengths: [Int32] = []

    /// Builds the automaton; pattern `i` of `patterns` gets id `i`.
    init(patterns: [[Int32]]) {
        for pattern in patterns {
            var state: Int32 = 0
            for symbol in pattern {
                let key = Self.key(state, symbol)
                if let s = next[key] {
                    state = s
                } else {
                    let s = Int32(depth.count)
                    next[key] = s
                    depth.append(depth[Int(state)] + 1)
                    fail.append(0)
                    outputs.append([])
                    state = s
                }
            }
            outputs[Int(state)].append(Int32(patternLengths.count))
            patternLengths.append(Int32(pattern.count))
        }
        // Breadth-first: failure links and merged outputs.
        var children: [[(symbol: Int32, state: Int32)]] = Array(repeating: [], count: depth.count)
        for (key, s) in next {
            children[Int(key >> 32)].append((Int32(truncatingIfNeeded: key & 0xFFFF_FFFF), s))
        }
        var queue: [Int32] = children[0].map(\.state)
        var head = 0
        while head < queue.count {
            let r = queue[head]
            head += 1
            for (symbol, s) in children[Int(r)] {
                queue.append(s)
                if r != 0 {
                    var f = fail[Int(r)]
                    while true {
                        if let t = next[Self.key(f, symbol)] { fail[Int(s)] = t; break }
                        if f == 0 { fail[Int(s)] = 0; break }
                        f = fail[Int(f)]
                    }
                }
                outputs[Int(s)] += outputs[Int(fail[Int(s)])]
            }
        }
    }

    /// Number of states, the root included.
    var stateCount: Int { depth.count }

    /// The state after reading `symbol` in `state`.
    func step(_ state: Int32, _ symbol: Int32) -> Int32 {
        guard symbol >= 0 else { return 0 }
        var s = state
        while true {
            if let t = next[Self.key(s, symbol)] { return t }
            if s == 0 { return 0 }
            s = fail[Int(s)]
        }
    }

    /// Patterns that end in `state`.
    func matches(at state: Int32) -> [Int32] { outputs[Int(state)] }

    private static func key(_ state: Int32, _ symbol: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: state)) << 32 | UInt64(UInt32(bitPattern: symbol))
    }
}
