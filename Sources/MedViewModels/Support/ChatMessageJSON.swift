import MedViewCore

/// One turn as the Anthropic Messages and OpenAI Chat Completions APIs both take it:
/// `{"role": "user" | "assistant" | "system", "content": "…"}`.
struct ChatMessageJSON: Encodable, Sendable {
    var role: String
    var content: String

    /// The turn `message`: assistant turns stay `assistant`, every other role is `user`.
    init(_ message: ModelMessage) {
        role = message.role == .assistant ? "assistant" : "user"
        content = message.text
    }

    /// A turn with an explicit role (the OpenAI `system` message).
    init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}
