import Foundation

/// A patient message on its way: it keeps its idempotency id until the server acknowledges it.
struct OutboxItem: Codable, Sendable, Equatable {
    var id: String
    var text: String
    var target: ConversationTarget
}

/// The queue of messages not yet acknowledged, in the order they were written, optionally kept
/// in a file the app names (so a message written offline survives the app being closed). It also
/// remembers which server conversation each new-conversation key became.
///
/// The file holds patient text: it is written with owner-only permissions, and an app should put
/// it where its platform protects data at rest (on iOS, a file-protection class).
struct Outbox: Sendable {
    private(set) var items: [OutboxItem] = []
    /// New-conversation keys that the server has given an id.
    private(set) var conversations: [String: String] = [:]
    let file: URL?

    private struct Saved: Codable {
        var items: [OutboxItem]
        var conversations: [String: String]
    }

    /// Loads the queue from `file` if it exists; an unreadable file is set aside, never fatal.
    init(file: URL?) {
        self.file = file
        guard let file, let data = try? Data(contentsOf: file) else { return }
        if let saved = try? JSONDecoder().decode(Saved.self, from: data) {
            items = saved.items
            conversations = saved.conversations
        } else {
            try? FileManager.default.moveItem(at: file, to: file.appendingPathExtension("unreadable"))
        }
    }

    var first: OutboxItem? { items.first }

    func contains(_ id: String) -> Bool { items.contains { $0.id == id } }

    mutating func append(_ item: OutboxItem) {
        items.append(item)
        save()
    }

    mutating func remove(_ id: String) {
        items.removeAll { $0.id == id }
        save()
    }

    /// The server conversation a target stands for, if it is known yet.
    func conversationId(for target: ConversationTarget) -> String? {
        switch target {
        case .existing(let id): id
        case .new(let key): conversations[key]
        }
    }

    mutating func learn(_ target: ConversationTarget, is conversationId: String) {
        guard case .new(let key) = target, conversations[key] == nil else { return }
        conversations[key] = conversationId
        save()
    }

    private func save() {
        guard let file else { return }
        // Keys of conversations whose messages have all gone are no longer needed.
        let keys = Set(items.compactMap { item -> String? in if case .new(let key) = item.target { key } else { nil } })
        let saved = Saved(items: items, conversations: conversations.filter { keys.contains($0.key) })
        guard let data = try? JSONEncoder().encode(saved) else { return }
        do {
            try data.write(to: file, options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        } catch {
            // The queue still works in memory; the app learns nothing is persisted only by the missing file.
        }
    }
}
