import MedViewCore
import MedViewServer
import Testing

@Suite struct LimitSettingsTests {
    @Test("rate limits, daily output budget and replay memory: defaults, then environment, then command line")
    func resolution() throws {
        let defaults = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [:])
        #expect(defaults.chat.usageLimits == UsageLimits(messagesPerMinute: 20, burst: 20, dailyOutputTokens: nil))
        #expect(defaults.chat.replayMemoryBytes == 64 * 1024 * 1024)

        let env = ["MEDVIEW_RATE_LIMIT_PER_MINUTE": "5", "MEDVIEW_RATE_LIMIT_BURST": "7", "MEDVIEW_DAILY_OUTPUT_TOKENS": "50000", "MEDVIEW_REPLAY_MEMORY_BYTES": "1000"]
        let fromEnv = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: env)
        #expect(fromEnv.chat.usageLimits == UsageLimits(messagesPerMinute: 5, burst: 7, dailyOutputTokens: 50000))
        #expect(fromEnv.chat.replayMemoryBytes == 1000)

        var a = ServeArguments()
        a.rateLimitPerMinute = 30
        a.rateLimitBurst = 3
        a.dailyOutputTokens = 0
        a.replayMemoryBytes = 0
        let fromCLI = try ServerConfiguration.resolve(arguments: a, environment: env)
        #expect(fromCLI.chat.usageLimits == UsageLimits(messagesPerMinute: 30, burst: 3, dailyOutputTokens: nil))
        #expect(fromCLI.chat.replayMemoryBytes == 0)
    }

    @Test("rate limit settings below 1 are refused, naming the option and the variable")
    func bounds() throws {
        for (name, flag) in [("MEDVIEW_RATE_LIMIT_PER_MINUTE", "--rate-limit-per-minute"), ("MEDVIEW_RATE_LIMIT_BURST", "--rate-limit-burst")] {
            #expect(throws: ConfigurationError("\(flag) / \(name) must be at least 1.")) {
                _ = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [name: "0"])
            }
        }
        #expect(throws: ConfigurationError("--daily-output-tokens / MEDVIEW_DAILY_OUTPUT_TOKENS must be at least 0.")) {
            _ = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_DAILY_OUTPUT_TOKENS": "-1"])
        }
    }
}
