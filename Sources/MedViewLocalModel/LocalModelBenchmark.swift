import Foundation

/// Measures the engine on one prompt: prompt processing, time to first token, generation speed
/// and resident memory.
public enum LocalModelBenchmark {
    /// What one run measured.
    public struct Result: Sendable, Codable, Equatable {
        public var promptTokens: Int
        public var promptTokensPerSecond: Double
        public var timeToFirstTokenMilliseconds: Double
        public var generatedTokens: Int
        public var generationTokensPerSecond: Double
        public var residentMegabytes: Double
        /// The greedy tokens produced (so two engines can be checked to do the same work).
        public var tokens: [Int32]
        /// Time to choose one token with the product's default sampling (temperature, top-k, top-p,
        /// repetition penalty) from a full vocabulary of logits; the greedy figures above leave it out.
        public var samplingMicroseconds: Double?
    }

    /// The default benchmark prompt (ChatML, about 100 tokens).
    public static let defaultPrompt = """
        <|im_start|>system
        You are a careful health companion. You give general information, you are not a doctor, and you tell people to seek care when symptoms are severe.<|im_end|>
        <|im_start|>user
        I have had a mild headache for two days, I sleep about five hours a night and drink a lot of coffee. What simple things could I try at home, and when should I see a doctor?<|im_end|>
        <|im_start|>assistant

        """

    /// Runs the benchmark: evaluates `prompt` cold, then generates `generate` tokens greedily
    /// (end-of-turn tokens included, so the count is fixed).
    public static func run(model: LlamaModel, prompt: String = defaultPrompt, generate: Int = 128, threads: Int = 2, contextLength: Int = 2048) -> Result {
        let session = InferenceSession(model: model, contextLength: contextLength, threads: threads)
        let tokens = model.tokenizer.encode(prompt, parseSpecial: true)
        let start = ContinuousClock.now
        var logits = session.evaluate(tokens)
        let promptDone = ContinuousClock.now
        var token = Sampler.argmax(logits)
        let firstToken = ContinuousClock.now
        var produced = [token]
        let generationStart = ContinuousClock.now
        for _ in 1..<max(2, generate) where session.position < contextLength {
            logits = session.evaluate([token])
            token = Sampler.argmax(logits)
            produced.append(token)
        }
        let generationEnd = ContinuousClock.now
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        var sampler = Sampler(SamplingParameters())
        let samplingRounds = 200
        let samplingStart = ContinuousClock.now
        for _ in 0..<samplingRounds {
            token = sampler.sample(logits, history: produced)
        }
        let samplingTime = seconds(ContinuousClock.now - samplingStart) / Double(samplingRounds)
        return Result(
            promptTokens: tokens.count,
            promptTokensPerSecond: Double(tokens.count) / seconds(promptDone - start),
            timeToFirstTokenMilliseconds: seconds(firstToken - start) * 1000,
            generatedTokens: produced.count - 1,
            generationTokensPerSecond: Double(produced.count - 1) / seconds(generationEnd - generationStart),
            residentMegabytes: residentMegabytes(),
            tokens: produced,
            samplingMicroseconds: samplingTime * 1e6
        )
    }

    /// This process's resident set size (VmRSS from /proc/self/status), in MiB; 0 where unavailable.
    public static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
