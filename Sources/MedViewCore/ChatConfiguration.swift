import MedViewSafety

/// Settings of the stream engine, read once at the edge and passed in.
public struct ChatConfiguration: Sendable {
    /// The companion's role, sent as the system prompt.
    public var systemPrompt: String
    /// Context budget (system prompt plus turns), in estimated tokens.
    public var contextBudgetTokens: Int
    public var maxOutputTokens: Int
    /// Sampling temperature sent to the model; `nil` leaves the model's default.
    public var temperature: Double?
    /// Longest patient message, in characters.
    public var maxMessageCharacters: Int
    /// Streams one user may have running at once.
    public var maxActiveStreamsPerUser: Int
    public var chunking: StreamProcessor.Configuration
    /// How long a finished stream's log stays in memory for fast resume (it is also stored).
    public var replayRetention: Duration
    /// Estimated bytes of replay logs that finished answers may keep in memory, all together;
    /// above it the oldest leave memory first (they are served from the store).
    public var replayMemoryBytes: Int
    /// Per-user message rate and daily output budget; `nil` for none (the engine alone, in benchmarks).
    public var usageLimits: UsageLimits?
    /// How often answers whose ending the store refused are written again.
    public var storeRetryInterval: Duration
    /// Most earlier messages read for a new answer's context (the token budget then decides how
    /// many are sent): a bound, so a message costs the same however long the conversation is.
    public var contextWindowMessages: Int = 100
    /// Conversations whose context window is kept in memory (``ContextWindowCache``), so that a
    /// new message reads only the latest few messages from the store; 0 reads the whole window
    /// every time.
    public var contextCacheConversations: Int = 2000
    /// Answers the process runs at once, all users together; a message past it gets a retryable
    /// `overloaded` at once (admission control, so a burst cannot grow memory without bound).
    public var maxRunningAnswers: Int = 2000

    public init(
        systemPrompt: String = ChatConfiguration.defaultSystemPrompt,
        contextBudgetTokens: Int = 6000,
        maxOutputTokens: Int = 1024,
        maxMessageCharacters: Int = 8000,
        maxActiveStreamsPerUser: Int = 4,
        chunking: StreamProcessor.Configuration = .init(),
        replayRetention: Duration = .seconds(600),
        replayMemoryBytes: Int = 64 << 20,
        usageLimits: UsageLimits? = UsageLimits(),
        storeRetryInterval: Duration = .seconds(1)
    ) {
        self.replayMemoryBytes = replayMemoryBytes
        self.usageLimits = usageLimits
        self.storeRetryInterval = storeRetryInterval
        self.systemPrompt = systemPrompt
        self.contextBudgetTokens = contextBudgetTokens
        self.maxOutputTokens = maxOutputTokens
        self.maxMessageCharacters = maxMessageCharacters
        self.maxActiveStreamsPerUser = maxActiveStreamsPerUser
        self.chunking = chunking
        self.replayRetention = replayRetention
    }

    /// The companion's role (information and support, not diagnosis; when to seek care) and the
    /// emergency and medication rules the product follows, for every model.
    public static let defaultSystemPrompt = SafetyPrompt.systemPrompt
}
