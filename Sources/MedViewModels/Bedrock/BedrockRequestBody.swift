import Foundation
import MedViewCore
import MedViewProtocol

/// The JSON bodies of ConverseStream and InvokeModelWithResponseStream (Anthropic Messages), and
/// of their unstreamed forms Converse and InvokeModel (``BedrockModel/reply(_:)``).
enum BedrockRequestBody {
    struct Text: Encodable { var text: String }
    struct ConverseMessage: Encodable { var role: String; var content: [Text] }
    struct InferenceConfig: Encodable { var maxTokens: Int; var temperature: Double?; var topP: Double? }
    struct GuardrailConfig: Encodable {
        var guardrailIdentifier: String
        var guardrailVersion: String
        /// Only for ConverseStream; Converse has no such field.
        var streamProcessingMode: String?
    }
    struct Converse: Encodable {
        var system: [Text]?
        var messages: [ConverseMessage]
        var inferenceConfig: InferenceConfig
        var guardrailConfig: GuardrailConfig?
    }

    struct AnthropicText: Encodable { var type = "text"; var text: String }
    struct AnthropicMessage: Encodable { var role: String; var content: [AnthropicText] }
    struct Invoke: Encodable {
        var anthropic_version = "bedrock-2023-05-31"
        var max_tokens: Int
        var system: String?
        var messages: [AnthropicMessage]
        var temperature: Double?
        var top_p: Double?
    }

    /// Messages as Bedrock wants them: starting with a user turn, roles alternating (neighbours
    /// with the same role are joined with a blank line).
    static func alternating(_ messages: [ModelMessage]) -> [(role: String, text: String)] {
        var result: [(role: String, text: String)] = []
        for message in messages {
            let role = message.role == .user ? "user" : "assistant"
            if result.isEmpty && role != "user" { continue }
            if let last = result.last, last.role == role {
                result[result.count - 1].text += "\n\n" + message.text
            } else {
                result.append((role, message.text))
            }
        }
        return result
    }

    /// The body for `request`; `streaming` is false for the unstreamed Converse (whose guardrail
    /// configuration has no processing mode) and InvokeModel.
    static func encode(_ request: ModelRequest, configuration: BedrockConfiguration, streaming: Bool = true) throws -> [UInt8] {
        let messages = alternating(request.messages)
        let maxTokens = configuration.maxTokens ?? request.maxOutputTokens
        let temperature = configuration.temperature ?? request.temperature
        let system = request.system.isEmpty ? nil : request.system
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        switch configuration.api {
        case .converse:
            let body = Converse(
                system: system.map { [Text(text: $0)] },
                messages: messages.map { ConverseMessage(role: $0.role, content: [Text(text: $0.text)]) },
                inferenceConfig: InferenceConfig(maxTokens: maxTokens, temperature: temperature, topP: configuration.topP),
                guardrailConfig: configuration.guardrail.map { GuardrailConfig(guardrailIdentifier: $0.identifier, guardrailVersion: $0.version, streamProcessingMode: streaming ? "sync" : nil) }
            )
            return Array(try encoder.encode(body))
        case .invoke:
            let body = Invoke(
                max_tokens: maxTokens, system: system,
                messages: messages.map { AnthropicMessage(role: $0.role, content: [AnthropicText(text: $0.text)]) },
                temperature: temperature, top_p: configuration.topP
            )
            return Array(try encoder.encode(body))
        }
    }
}
