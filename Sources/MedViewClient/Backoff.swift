/// Exponential backoff with full jitter: the n-th retry waits a random time between zero and
/// `min(cap, base × 2ⁿ)`, so clients that lost the server at the same moment do not all come back
/// at the same instant.
public struct Backoff: Sendable, Equatable {
    /// The first ceiling.
    public var base: Duration
    /// The largest ceiling.
    public var cap: Duration
    /// Retries handed out since the last ``reset()``.
    public private(set) var attempt = 0

    public init(base: Duration = .milliseconds(500), cap: Duration = .seconds(15)) {
        self.base = max(base, .milliseconds(1))
        self.cap = max(cap, self.base)
    }

    /// The ceiling of the next delay, without jitter.
    public var ceiling: Duration {
        // 2^attempt overflows quickly; past 30 doublings any base is over any sensible cap.
        attempt >= 30 ? cap : min(cap, base * (1 << attempt))
    }

    /// The next delay (a uniform random fraction of the ceiling), counting the attempt.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let ceiling = self.ceiling
        attempt += 1
        return ceiling * Double.random(in: 0..<1, using: &generator)
    }

    /// The next delay, with the system's random numbers.
    public mutating func next() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }

    /// Starts again from the first ceiling (after a successful connection).
    public mutating func reset() {
        attempt = 0
    }
}
