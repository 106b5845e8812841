import Foundation

/// How the next token is chosen.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); higher values flatten the distribution.
    public var temperature: Float
    /// Keep only the `topK` most likely tokens (0 keeps all).
    public var topK: Int
    /// Keep the smallest set of likely tokens whose probabilities reach `topP` (1 keeps all).
    public var topP: Float
    /// Divides positive logits (multiplies negative ones) of recently produced tokens (1 is off).
    public var repetitionPenalty: Float
    /// How many recent tokens the repetition penalty looks at.
    public var repetitionWindow: Int
    /// Seed of the random generator, so a sampled answer can be reproduced.
    public var seed: UInt64

    public init(temperature: Float = 0.6, topK: Int = 40, topP: Float = 0.9, repetitionPenalty: Float = 1.1, repetitionWindow: Int = 64, seed: UInt64 = 0x5EED) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.repetitionWindow = repetitionWindow
        self.seed = seed
    }

    /// Always the most likely token, no penalty.
    public static let greedy = SamplingParameters(temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1)
}

/// SplitMix64: a small, fast, seedable generator (reproducible across platforms).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Picks tokens from logits: repetition penalty, then top-k, top-p and temperature.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: SplitMix64

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = SplitMix64(seed: parameters.seed)
    }

    /// The index of the largest value (the first one on ties).
    public static func argmax(_ values: [Float]) -> Int32 {
        var best = 0
        var bestValue = -Float.infinity
        for (i, v) in values.enumerated() where v > bestValue {
            best = i
            bestValue = v
        }
        return Int32(best)
    }

    /// The `count` largest logits with their ids, largest first (on ties, the lower id first).
    ///
    /// Selects with a bounded min-heap in one pass (O(n log count)) instead of sorting the whole
    /// vocabulary on every token: with top-k 40 over 49,152 logits that is the difference between
    /// a few microseconds and a few milliseconds per token.
    static func mostLikely(_ logits: [Float], count: Int) -> [(id: Int32, logit: Float)] {
        let k = min(max(1, count), logits.count)
        // Orders candidates from least to most likely: the heap's root is the one to drop next.
        func below(_ a: (id: Int32, logit: Float), _ b: (id: Int32, logit: Float)) -> Bool {
            a.logit < b.logit || (a.logit == b.logit && a.id > b.id)
        }
        var heap: [(id: Int32, logit: Float)] = []
        heap.reserveCapacity(k)
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, below(heap[l], heap[m]) { m = l }
                if r < heap.count, below(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for (i, logit) in logits.enumerated() {
            let candidate = (id: Int32(i), logit: logit)
            if heap.count < k {
                heap.append(candidate)
                var c = heap.count - 1
                while c > 0, below(heap[c], heap[(c - 1) / 2]) {
                    heap.swapAt(c, (c - 1) / 2)
                    c = (c - 1) / 2
                }
            } else if below(heap[0], candidate) {
                heap[0] = candidate
                siftDown(0)
            }
        }
        return heap.sorted { below($1, $0) }
    }

    /// Chooses the next token given the logits and the tokens produced so far (prompt included).
    public mutating func sample(_ logits: [Float], history: [Int32]) -> Int32 {
        var logits = logits
        let p = parameters
        if p.repetitionPenalty != 1, p.repetitionWindow > 0 {
            for token in Set(history.suffix(p.repetitionWindow)) where token >= 0 && Int(token) < logits.count {
                let i = Int(token)
                logits[i] = logits[i] > 0 ? logits[i] / p.repetitionPenalty : logits[i] * p.repetitionPenalty
            }
        }
        if p.temperature <= 0 { return Self.argmax(logits) }
        let candidates = Self.mostLikely(logits, count: p.topK > 0 ? p.topK : logits.count)
        let maximum = candidates[0].logit
        var probabilities = candidates.map { exp(($0.logit - maximum) / p.temperature) }
        var total = probabilities.reduce(0, +)
        if p.topP < 1 {
            var cumulative: Float = 0
            var keep = probabilities.count
            for (i, probability) in probabilities.enumerated() {
                cumulative += probability / total
                if cumulative >= p.topP {
                    keep = i + 1
                    break
                }
            }
            probabilities.removeSubrange(keep...)
            total = probabilities.reduce(0, +)
        }
        let target = Float(Double(random.next() >> 11) / Double(1 << 53)) * total
        var cumulative: Float = 0
        for (i, probability) in probabilities.enumerated() {
            cumulative += probability
            if target < cumulative { return candidates[i].id }
        }
        return candidates[probabilities.count - 1].id
    }
}
