import Foundation
import MedViewCore

/// Test data builders. Times are whole milliseconds past a fixed instant, so they keep their
/// sub-second part and compare equal after rounding to the millisecond.
enum Sample {
    static let epoch = Date(timeIntervalSince1970: 1_750_000_000.125)

    static func date(_ seconds: Double) -> Date {
        epoch.addingTimeInterval(seconds)
    }

    static func conversation(id: String = Identifier.make("c"), userId: String, title: String = "Sleep and headaches", at seconds: Double = 0) -> Conversation {
        Conversation(id: id, userId: userId, title: title, createdAt: date(seconds), updatedAt: date(seconds))
    }

    /// A turn as a caller hands it to `beginTurn`.
    static func turn(
        conversationId: String,
        userId: String,
        clientMessageId: String = Identifier.make("m"),
        streamId: String = Identifier.make("s"),
        text: String = "Why do I wake up with a headache?",
        at seconds: Double = 1
    ) -> Turn {
        Turn(
            streamId: streamId,
            userId: userId,
            conversationId: conversationId,
            clientMessageId: clientMessageId,
            userMessage: StoredMessage(
                id: Identifier.make("msg"), conversationId: conversationId, userId: userId, role: .user,
                text: text, status: .complete, streamId: streamId, createdAt: date(seconds)
            ),
            assistantMessage: StoredMessage(
                id: Identifier.make("msg"), conversationId: conversationId, userId: userId, role: .assistant,
                text: "", status: .streaming, streamId: streamId, createdAt: date(seconds + 0.001)
            ),
            events: []
        )
    }

    static func events(_ count: Int) -> [StreamLogEntry] {
        (1...count).map { StreamLogEntry(seq: $0, json: #"{"type":"chat.delta","seq":\#($0)}"#) }
    }
}

/// Dates rounded to the millisecond, the precision both stores promise.
func ms(_ date: Date) -> Date {
    Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
}

extension Conversation {
    var rounded: Conversation {
        var copy = self
        copy.createdAt = ms(createdAt)
        copy.updatedAt = ms(updatedAt)
        return copy
    }
}

extension StoredMessage {
    var rounded: StoredMessage {
        var copy = self
        copy.createdAt = ms(createdAt)
        return copy
    }
}

extension Turn {
    var rounded: Turn {
        var copy = self
        copy.userMessage = userMessage.rounded
        copy.assistantMessage = assistantMessage.rounded
        return copy
    }
}

extension BeginTurnResult {
    var duplicate: Turn? {
        if case .duplicate(let turn) = self { turn } else { nil }
    }

    var isCreated: Bool {
        if case .created = self { true } else { false }
    }
}

extension Array where Element == Conversation {
    var rounded: [Conversation] { map(\.rounded) }
}

extension Array where Element == StoredMessage {
    var rounded: [StoredMessage] { map(\.rounded) }
}
