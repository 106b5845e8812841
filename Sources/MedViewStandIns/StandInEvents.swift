import Foundation
import MedViewAWS

/// The event-stream messages of a scripted answer, shaped like Bedrock's.
struct StandInEvents {
    let operation: BedrockStandIn.Operation
    let modelID: String

    static func json(_ object: [String: Any]) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    func event(_ type: String, _ payload: [String: Any]) -> EventStreamMessage {
        EventStreamMessage(headers: [
            .init(name: ":event-type", value: .string(type)),
            .init(name: ":content-type", value: .string("application/json")),
            .init(name: ":message-type", value: .string("event")),
        ], payload: Self.json(payload))
    }

    /// An InvokeModelWithResponseStream `chunk` holding one Anthropic stream event.
    func chunk(_ anthropic: [String: Any]) -> EventStreamMessage {
        event("chunk", ["bytes": Data(Self.json(anthropic)).base64EncodedString()])
    }

    func exception(_ type: String, _ message: String, originalStatusCode: Int? = nil) -> EventStreamMessage {
        var payload: [String: Any] = ["message": message]
        if let originalStatusCode { payload["originalStatusCode"] = originalStatusCode }
        return EventStreamMessage(headers: [
            .init(name: ":exception-type", value: .string(type)),
            .init(name: ":content-type", value: .string("application/json")),
            .init(name: ":message-type", value: .string("exception")),
        ], payload: Self.json(payload))
    }

    func start(inputTokens: Int) -> [EventStreamMessage] {
        switch operation {
        case .converse:
            return [event("messageStart", ["role": "assistant"])]
        case .invoke:
            return [
                chunk(["type": "message_start", "message": [
                    "id": "msg_standin", "type": "message", "role": "assistant", "model": modelID, "content": [Any](),
                    "usage": ["input_tokens": inputTokens, "output_tokens": 1],
                ] as [String: Any]]),
                chunk(["type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""]]),
            ]
        }
    }

    func delta(_ text: String) -> EventStreamMessage {
        switch operation {
        case .converse: event("contentBlockDelta", ["contentBlockIndex": 0, "delta": ["text": text]])
        case .invoke: chunk(["type": "content_block_delta", "index": 0, "delta": ["type": "text_delta", "text": text]])
        }
    }

    func end(stopReason: String, inputTokens: Int, outputTokens: Int) -> [EventStreamMessage] {
        switch operation {
        case .converse:
            return [
                event("contentBlockStop", ["contentBlockIndex": 0]),
                event("messageStop", ["stopReason": stopReason]),
                event("metadata", [
                    "usage": ["inputTokens": inputTokens, "outputTokens": outputTokens, "totalTokens": inputTokens + outputTokens],
                    "metrics": ["latencyMs": 1],
                ]),
            ]
        case .invoke:
            return [
                chunk(["type": "content_block_stop", "index": 0]),
                chunk(["type": "message_delta", "delta": ["stop_reason": stopReason], "usage": ["output_tokens": outputTokens]]),
                chunk(["type": "message_stop", "amazon-bedrock-invocationMetrics": [
                    "inputTokenCount": inputTokens, "outputTokenCount": outputTokens, "invocationLatency": 1, "firstByteLatency": 1,
                ]]),
            ]
        }
    }

    /// The JSON body of an unstreamed answer: a Converse response, or an Anthropic `message`.
    func whole(text: String, stopReason: String, inputTokens: Int, outputTokens: Int) -> [UInt8] {
        switch operation {
        case .converse:
            Self.json([
                "output": ["message": ["role": "assistant", "content": [["text": text]]]],
                "stopReason": stopReason,
                "usage": ["inputTokens": inputTokens, "outputTokens": outputTokens, "totalTokens": inputTokens + outputTokens],
                "metrics": ["latencyMs": 1],
            ])
        case .invoke:
            Self.json([
                "id": "msg_standin", "type": "message", "role": "assistant", "model": modelID,
                "content": [["type": "text", "text": text]],
                "stop_reason": stopReason, "stop_sequence": NSNull(),
                "usage": ["input_tokens": inputTokens, "output_tokens": outputTokens],
            ])
        }
    }
}
