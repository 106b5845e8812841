import MedViewProtocol

/// Builds what the model is asked: the system prompt, earlier turns within a token budget, and the new message.
///
/// Invariants: the new user message is always included; earlier turns are kept newest first
/// until the budget is spent, and the kept history starts with a user message; assistant
/// messages with no text (answers that never produced any) are left out.
public struct ContextBuilder: Sendable {
    public var systemPrompt: String
    /// Budget for system prompt plus messages, in estimated tokens.
    public var budgetTokens: Int
    public var maxOutputTokens: Int
    /// Sampling temperature for every request; `nil` leaves the model's default.
    public var temperature: Double?

    public init(systemPrompt: String, budgetTokens: Int, maxOutputTokens: Int, temperature: Double? = nil) {
        self.systemPrompt = systemPrompt
        self.budgetTokens = budgetTokens
        self.maxOutputTokens = maxOutputTokens
        self.temperature = temperature
    }

    /// A cheap, conservative token estimate (about four bytes of UTF-8 a token).
    public static func estimateTokens(_ text: String) -> Int {
        text.utf8.count / 4 + 4
    }

    /// The request for `newText`, given the conversation's earlier messages (oldest first).
    /// `system` replaces the configured system prompt for this turn (it carries safety notes).
    public func request(history: [StoredMessage], newText: String, system: String? = nil) -> ModelRequest {
        let systemPrompt = system ?? self.systemPrompt
        var remaining = budgetTokens - Self.estimateTokens(systemPrompt) - Self.estimateTokens(newText)
        var kept: [ModelMessage] = []
        for message in history.reversed() {
            if message.role == .assistant && message.text.isEmpty { continue }
            let cost = Self.estimateTokens(message.text)
            if cost > remaining { break }
            remaining -= cost
            kept.append(ModelMessage(role: message.role, text: message.text))
        }
        kept.reverse()
        while let first = kept.first, first.role != .user { kept.removeFirst() }
        kept.append(ModelMessage(role: .user, text: newText))
        return ModelRequest(system: systemPrompt, messages: kept, maxOutputTokens: maxOutputTokens, temperature: temperature)
    }
}
