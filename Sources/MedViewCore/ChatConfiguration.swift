/// Settings of the stream engine, read once at the edge and passed in.
public struct ChatConfiguration: Sendable {
    /// The companion's role, sent as the system prompt.
    public var systemPrompt: String
    /// Context budget (system prompt plus turns), in estimated tokens.
    public var contextBudgetTokens: Int
    public var maxOutputTokens: Int
    /// Longest patient message, in characters.
    public var maxMessageCharacters: Int
    /// Streams one user may have running at once.
    public var maxActiveStreamsPerUser: Int
    public var chunking: StreamProcessor.Configuration
    /// How long a finished stream's log stays in memory for fast resume (it is also stored).
    public var replayRetention: Duration

    public init(
        systemPrompt: String = ChatConfiguration.defaultSystemPrompt,
        contextBudgetTokens: Int = 6000,
        maxOutputTokens: Int = 1024,
        maxMessageCharacters: Int = 8000,
        maxActiveStreamsPerUser: Int = 4,
        chunking: StreamProcessor.Configuration = .init(),
        replayRetention: Duration = .seconds(600)
    ) {
        self.systemPrompt = systemPrompt
        self.contextBudgetTokens = contextBudgetTokens
        self.maxOutputTokens = maxOutputTokens
        self.maxMessageCharacters = maxMessageCharacters
        self.maxActiveStreamsPerUser = maxActiveStreamsPerUser
        self.chunking = chunking
        self.replayRetention = replayRetention
    }

    /// The companion's role until the safety layer supplies its own framing.
    public static let defaultSystemPrompt = """
        You are MedView Companion, a calm and careful health information assistant. \
        You give general health information and support; you do not diagnose or prescribe. \
        Encourage the person to contact a clinician for personal medical advice, and to call \
        emergency services for anything that could be an emergency.
        """
}
