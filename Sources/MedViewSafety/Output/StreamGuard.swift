/// What ``StreamGuard`` says after each piece of model output.
public struct GuardOutput: Sendable, Equatable {
    /// Text checked and safe to send now (possibly empty). Concatenating every `release` of a
    /// stream gives exactly the model's text up to the point the guard stopped it.
    public var release: String
    /// Set when the text held back broke a rule: the stream must stop here.
    public var violation: OutputViolation?

    /// An output releasing `release`, with an optional violation.
    public init(release: String, violation: OutputViolation? = nil) {
        self.release = release
        self.violation = violation
    }
}

/// A rule the model's output broke.
public struct OutputViolation: Sendable, Equatable {
    /// `self_harm_method`, `dangerous_dose`, `stop_medication` or `diagnosis_claim`.
    public var rule: String
    /// The safe message to send in place of the held text, before ending the stream with
    /// finish reason `safety`.
    public var replacement: String
}

/// Scans a model's output as it streams and holds back only what could still turn out unsafe.
///
/// Text is tokenized incrementally and fed to the policy's token automaton. What is released is
/// everything before the earliest of:
/// - the word still being written (the next delta could extend it);
/// - the tokens that currently spell the start of a rule phrase (the automaton's depth), so
///   "take 20 tab" + "lets at once" is caught before "take" is sent;
/// - a match whose rule can still be cleared by what follows in its clause ("stop taking it …
///   and call your doctor"), held until the clause ends.
/// Clean text therefore goes out at once, word by word. Once a violation is found the guard is
/// stopped: later appends release nothing and report the same violation.
///
/// Cost: each scalar and each token is processed once (plus a small re-scan of a held clause
/// when it is decided), so a 256-character chunk takes microseconds.
public struct StreamGuard: Sendable {
    private let policy: OutputPolicy
    /// Unreleased text; `buffer[0]` is at stream offset `base`.
    private var buffer: [Unicode.Scalar] = []
    private var base = 0
    /// Stream offset up to which complete tokens have been read.
    private var scanned = 0
    /// Tokens of the current clause (stream offsets).
    private var clause: [Token] = []
    /// Automaton state and, for each fed token, its index in `clause`.
    private var state: Int32 = 0
    private var fed: [Int] = []
    /// Matches waiting for their clause to end.
    private var pending: [PhraseMatcher.Match] = []
    private var stoppedBy: OutputViolation?

    /// Clauses longer than this are decided without waiting for their end.
    static let maxClauseTokens = 120

    /// A guard for one stream, using `policy` (the bundled rules by default).
    public init(policy: OutputPolicy = .standard) {
        self.policy = policy
    }

    /// Whether the guard has stopped the stream.
    public var isStopped: Bool { stoppedBy != nil }

    /// Adds the next piece of model output.
    public mutating func append(_ text: String) -> GuardOutput {
        if let v = stoppedBy { return GuardOutput(release: "", violation: v) }
        buffer.append(contentsOf: text.unicodeScalars)
        return advance(final: false)
    }

    /// The model finished: decides what is still held and releases the rest if it is clean.
    public mutating func finish() -> GuardOutput {
        if let v = stoppedBy { return GuardOutput(release: "", violation: v) }
        return advance(final: true)
    }

    private mutating func advance(final: Bool) -> GuardOutput {
        var tokens: [Token] = []
        let resume = policy.normalizer.tokenize(buffer, from: scanned - base, final: final, into: &tokens)
        scanned = base + resume
        for var token in tokens {
            token.start += base
            token.end += base
            if let v = consume(token) { return stop(v) }
        }
        if final, let v = decidePending() { return stop(v) }
        // Release up to the earliest thing still held.
        var cut = scanned
        if let p = pending.map(\.first).min() { cut = min(cut, clause[p].start) }
        let depth = Int(policy.matcher.automaton.depth[Int(state)])
        if depth > 0 { cut = min(cut, clause[fed[fed.count - depth]].start) }
        if !final, cut == scanned, cut > base, buffer[cut - base - 1].value >= 0x80 {
            cut -= 1  // a non-ASCII trailing scalar could still gain a combining mark
        }
        guard cut > base else { return GuardOutput(release: "") }
        let released = String(scalars: buffer[0..<(cut - base)])
        buffer.removeFirst(cut - base)
        base = cut
        return GuardOutput(release: released)
    }

    /// Feeds one token; returns a violation as soon as one is certain.
    private mutating func consume(_ token: Token) -> Int? {
        if token.kind == .boundary {
            let v = decidePending()
            resetClause()
            return v
        }
        clause.append(token)
        guard let symbol = policy.matcher.symbol(for: token) else { return nil }
        fed.append(clause.count - 1)
        state = policy.matcher.automaton.step(state, symbol)
        for p in policy.matcher.automaton.matches(at: state) {
            let length = Int(policy.matcher.automaton.patternLengths[Int(p)])
            let match = PhraseMatcher.Match(payload: policy.matcher.payload(ofPattern: p), first: fed[fed.count - length], last: clause.count - 1)
            switch policy.decide(match, in: clause, complete: false) {
            case .clear: break
            case .undecided: pending.append(match)
            case .violation(let v): return v
            }
        }
        if clause.count >= Self.maxClauseTokens {
            let v = decidePending()
            resetClause()
            return v
        }
        return nil
    }

    private mutating func decidePending() -> Int? {
        defer { pending.removeAll() }
        for m in pending {
            if case .violation(let v) = policy.decide(m, in: clause, complete: true) { return v }
        }
        return nil
    }

    private mutating func resetClause() {
        clause.removeAll(keepingCapacity: true)
        fed.removeAll(keepingCapacity: true)
        pending.removeAll()
        state = 0
    }

    private mutating func stop(_ rule: Int) -> GuardOutput {
        let r = policy.rules[rule]
        let v = OutputViolation(rule: r.id, replacement: r.replacement)
        stoppedBy = v
        buffer.removeAll()
        return GuardOutput(release: "", violation: v)
    }
}
