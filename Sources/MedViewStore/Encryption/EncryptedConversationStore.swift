import Crypto
import Foundation
import MedViewCore
import Synchronization

/// A ``ConversationStore`` that encrypts everything a patient or model wrote before it reaches
/// `base`, and decrypts it on the way back: conversation titles, message texts and stream event
/// payloads (the replay log JSON). Ids, statuses and times stay in clear (they are what stores
/// index and sort by).
///
/// Each conversation has its own data key (``DataKeyRing``); deleting the conversation destroys
/// the key first, so its ciphertext is unreadable everywhere, old backups of `base` included.
/// Any store gets encryption by being wrapped; the adapters stay unaware of it.
///
/// Failures to decrypt are typed ``EncryptionError``s (tampered value, value moved to another
/// row, erased key), never a crash.
public final class EncryptedConversationStore: ConversationStore {
    /// The store holding ciphertext.
    public let base: any ConversationStore
    public let ring: DataKeyRing
    /// Conversation of each stream begun here and not yet finished (saves a read at finish).
    private let streamConversations = Mutex<[String: String]>([:])
    /// Events of running streams as the journal sealed them (plaintext and envelope, by stream and
    /// seq), so that the ending, which stores the whole log again, does not seal them twice. An
    /// envelope is reused only for the same plaintext under the same key version; entries leave
    /// at the stream's ending (and all at once past `sealedEventsLimit` streams).
    private let sealedEvents = Mutex<[String: [Int: (plain: String, sealed: String, version: Int)]]>([:])
    private static let sealedEventsLimit = 10_000

    public init(base: any ConversationStore, ring: DataKeyRing) {
        self.base = base
        self.ring = ring
    }

    // MARK: - Conversations

    public func createConversation(_ conversation: Conversation) async throws {
        try await base.createConversation(try await sealed(conversation))
    }

    public func conversation(id: String, userId: String) async throws -> Conversation? {
        guard let stored = try await base.conversation(id: id, userId: userId) else { return nil }
        return try await opened(stored)
    }

    public func conversations(userId: String, limit: Int) async throws -> [Conversation] {
        var result: [Conversation] = []
        for stored in try await base.conversations(userId: userId, limit: limit) {
            result.append(try await opened(stored))
        }
        return result
    }

    /// Destroys the conversation's data keys, then deletes it from `base`.
    public func deleteConversation(id: String, userId: String) async throws -> Bool {
        try await ring.erase(conversationId: id, userId: userId)
        return try await base.deleteConversation(id: id, userId: userId)
    }

    public func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        var result: [StoredMessage] = []
        for stored in try await base.messages(conversationId: conversationId, userId: userId) {
            result.append(try await opened(stored))
        }
        return result
    }

    // MARK: - Turns

    public func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        try await beginTurn(turn, newConversation: newConversation, meanwhile: {}).0
    }

    public func beginTurn<T: Sendable>(_ turn: Turn, newConversation: Conversation?, whenStored: @escaping @Sendable () -> Void, meanwhile: () async -> T) async throws -> (BeginTurnResult, T) {
        if let newConversation, newConversation.id != turn.conversationId || newConversation.userId != turn.userId {
            throw StoreError.conversationNotFound
        }
        if newConversation == nil, try await ring.currentKey(userId: turn.userId, conversationId: turn.conversationId, create: false) == nil {
            // No key yet: only a conversation of this user (stored before encryption) may get one.
            guard try await base.conversation(id: turn.conversationId, userId: turn.userId) != nil else {
                let other = await meanwhile()
                if let duplicate = try await base.turn(clientMessageId: turn.clientMessageId, userId: turn.userId) {
                    return (.duplicate(try await opened(duplicate)), other)
                }
                throw StoreError.conversationNotFound
            }
        }
        let (version, key) = try await currentKey(userId: turn.userId, conversationId: turn.conversationId, fresh: newConversation != nil)
        var sealedTurn = turn
        // Stores take the messages' ids from the turn; bind them the same way.
        for path in [\Turn.userMessage, \Turn.assistantMessage] {
            var message = turn[keyPath: path]
            message.conversationId = turn.conversationId
            message.userId = turn.userId
            message.streamId = turn.streamId
            sealedTurn[keyPath: path] = try seal(message, key: key, version: version)
        }
        sealedTurn.events = try turn.events.map { try seal($0, streamId: turn.streamId, userId: turn.userId, conversationId: turn.conversationId, key: key, version: version) }
        let sealedConversation = try newConversation.map { try seal($0, key: key, version: version) }
        let (result, other) = try await base.beginTurn(sealedTurn, newConversation: sealedConversation, whenStored: whenStored, meanwhile: meanwhile)
        switch result {
        case .created:
            streamConversations.withLock { $0[turn.streamId] = turn.conversationId }
            return (.created, other)
        case .duplicate(let stored):
            if let newConversation, stored.conversationId != newConversation.id,
               try await base.conversation(id: newConversation.id, userId: turn.userId) == nil {
                // A retry proposed a conversation that was not created: its fresh key is not needed.
                try await ring.erase(conversationId: newConversation.id, userId: turn.userId)
            }
            return (.duplicate(try await opened(stored)), other)
        }
    }

    public func finishTurn(_ completion: TurnCompletion) async throws {
        let reusable = sealedEvents.withLock { $0.removeValue(forKey: completion.streamId) } ?? [:]
        var conversationId = streamConversations.withLock { $0.removeValue(forKey: completion.streamId) }
        if conversationId == nil {
            conversationId = try await base.turn(streamId: completion.streamId, userId: completion.userId)?.conversationId
        }
        guard let conversationId,
              let current = try await ring.currentKey(userId: completion.userId, conversationId: conversationId, create: false) else {
            return // the stream is not the user's, or its conversation was erased
        }
        let (version, key) = current
        var sealed = completion
        sealed.assistantText = try FieldCipher.seal(
            completion.assistantText, key: key, version: version,
            binding: .init(userId: completion.userId, conversationId: conversationId, recordId: Self.assistantRecord(completion.streamId), field: .messageText)
        )
        sealed.events = try completion.events.map { entry in
            if let done = reusable[entry.seq], done.version == version, done.plain == entry.json {
                return StreamLogEntry(seq: entry.seq, json: done.sealed)
            }
            return try seal(entry, streamId: completion.streamId, userId: completion.userId, conversationId: conversationId, key: key, version: version)
        }
        try await base.finishTurn(sealed)
    }

    public func turn(streamId: String, userId: String) async throws -> Turn? {
        guard let stored = try await base.turn(streamId: streamId, userId: userId) else { return nil }
        return try await opened(stored)
    }

    public func turn(clientMessageId: String, userId: String) async throws -> Turn? {
        guard let stored = try await base.turn(clientMessageId: clientMessageId, userId: userId) else { return nil }
        return try await opened(stored)
    }

    public func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? {
        guard var context = try await base.recentContext(conversationId: conversationId, userId: userId, limit: limit) else { return nil }
        var messages: [StoredMessage] = []
        messages.reserveCapacity(context.messages.count)
        for message in context.messages { messages.append(try await opened(message)) }
        context.messages = messages
        if let state = context.safetyState {
            context.safetyState = try await open(state, binding: .init(userId: userId, conversationId: conversationId, recordId: conversationId, field: .safetyState))
        }
        return context
    }

    /// Seals the state under the conversation's current data key, bound to the conversation.
    public func saveSafetyState(conversationId: String, userId: String, state: String) async throws {
        guard let (version, key) = try await ring.currentKey(userId: userId, conversationId: conversationId, create: false) else { return }
        let sealed = try FieldCipher.seal(state, key: key, version: version, binding: .init(userId: userId, conversationId: conversationId, recordId: conversationId, field: .safetyState))
        try await base.saveSafetyState(conversationId: conversationId, userId: userId, state: sealed)
    }

    /// Seals each event under its conversation's current data key, bound to its stream and
    /// sequence number (as ``finishTurn(_:)`` does), then appends; a stream whose conversation
    /// was erased gets nothing.
    public func appendStreamEvents(_ appends: [StreamAppend]) async throws {
        var sealedAppends: [StreamAppend] = []
        sealedAppends.reserveCapacity(appends.count)
        for append in appends {
            guard let (version, key) = try await ring.currentKey(userId: append.userId, conversationId: append.conversationId, create: false) else { continue }
            var sealed = append
            sealed.events = try append.events.map { try seal($0, streamId: append.streamId, userId: append.userId, conversationId: append.conversationId, key: key, version: version) }
            sealedAppends.append(sealed)
            sealedEvents.withLock { cache in
                if cache.count >= Self.sealedEventsLimit, cache[append.streamId] == nil { cache.removeAll() }
                for (plain, envelope) in zip(append.events, sealed.events) {
                    cache[append.streamId, default: [:]][plain.seq] = (plain.json, envelope.json, version)
                }
            }
        }
        try await base.appendStreamEvents(sealedAppends)
    }

    public func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? {
        guard var page = try await base.streamEvents(streamId: streamId, userId: userId, after: seq) else { return nil }
        var events: [StreamLogEntry] = []
        events.reserveCapacity(page.events.count)
        for entry in page.events {
            let json = try await open(entry.json, binding: .init(userId: userId, conversationId: page.conversationId, recordId: "\(streamId)#\(entry.seq)", field: .streamEvent))
            events.append(StreamLogEntry(seq: entry.seq, json: json))
        }
        page.events = events
        return page
    }

    public func recordHeartbeat(instanceId: String, at date: Date) async throws {
        try await base.recordHeartbeat(instanceId: instanceId, at: date)
    }

    public func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] {
        var turns: [Turn] = []
        for stored in try await base.orphanedTurns(notAliveSince: date, limit: limit) {
            turns.append(try await opened(stored))
        }
        return turns
    }

    public func checkHealth() async throws {
        try await base.checkHealth()
    }

    /// Closes `base`, then the key store.
    public func close() async throws {
        defer {
            streamConversations.withLock { $0.removeAll() }
            sealedEvents.withLock { $0.removeAll() }
        }
        try await base.close()
        try await ring.keyStore.close()
    }

    // MARK: - Sealing

    /// The assistant message's text is bound to its stream, not its message id: `finishTurn`
    /// knows only the stream.
    static func assistantRecord(_ streamId: String) -> String { "assistant:" + streamId }

    private static func messageRecord(_ message: StoredMessage) -> String {
        message.role == .assistant ? assistantRecord(message.streamId) : "user:" + message.id
    }

    private func currentKey(userId: String, conversationId: String, fresh: Bool = false) async throws -> (Int, SymmetricKey) {
        guard let current = try await ring.currentKey(userId: userId, conversationId: conversationId, create: true, fresh: fresh) else {
            throw EncryptionError.keyNotFound
        }
        return current
    }

    /// A conversation being created, sealed with its first key (made without a look for keys it
    /// cannot have yet: ``DataKeyRing/currentKey(userId:conversationId:create:fresh:)``).
    private func sealed(_ conversation: Conversation) async throws -> Conversation {
        let (version, key) = try await currentKey(userId: conversation.userId, conversationId: conversation.id, fresh: true)
        return try seal(conversation, key: key, version: version)
    }

    private func seal(_ conversation: Conversation, key: SymmetricKey, version: Int) throws -> Conversation {
        var sealed = conversation
        sealed.title = try FieldCipher.seal(conversation.title, key: key, version: version, binding: .init(userId: conversation.userId, conversationId: conversation.id, recordId: conversation.id, field: .conversationTitle))
        return sealed
    }

    private func seal(_ message: StoredMessage, key: SymmetricKey, version: Int) throws -> StoredMessage {
        var sealed = message
        sealed.text = try FieldCipher.seal(message.text, key: key, version: version, binding: .init(userId: message.userId, conversationId: message.conversationId, recordId: Self.messageRecord(message), field: .messageText))
        return sealed
    }

    private func seal(_ entry: StreamLogEntry, streamId: String, userId: String, conversationId: String, key: SymmetricKey, version: Int) throws -> StreamLogEntry {
        StreamLogEntry(seq: entry.seq, json: try FieldCipher.seal(entry.json, key: key, version: version, binding: .init(userId: userId, conversationId: conversationId, recordId: "\(streamId)#\(entry.seq)", field: .streamEvent)))
    }

    // MARK: - Opening

    private func open(_ stored: String, binding: FieldCipher.Binding) async throws -> String {
        if stored.isEmpty { return "" }
        let version = try FieldCipher.version(of: stored)
        let key = try await ring.key(DataKeyContext(userId: binding.userId, conversationId: binding.conversationId, version: version))
        return try FieldCipher.open(stored, key: key, binding: binding)
    }

    private func opened(_ stored: Conversation) async throws -> Conversation {
        var conversation = stored
        conversation.title = try await open(stored.title, binding: .init(userId: stored.userId, conversationId: stored.id, recordId: stored.id, field: .conversationTitle))
        return conversation
    }

    private func opened(_ stored: StoredMessage) async throws -> StoredMessage {
        var message = stored
        message.text = try await open(stored.text, binding: .init(userId: stored.userId, conversationId: stored.conversationId, recordId: Self.messageRecord(stored), field: .messageText))
        return message
    }

    private func opened(_ stored: Turn) async throws -> Turn {
        var turn = stored
        turn.userMessage = try await opened(stored.userMessage)
        turn.assistantMessage = try await opened(stored.assistantMessage)
        var events: [StreamLogEntry] = []
        for entry in stored.events {
            let json = try await open(entry.json, binding: .init(userId: stored.userId, conversationId: stored.conversationId, recordId: "\(stored.streamId)#\(entry.seq)", field: .streamEvent))
            events.append(StreamLogEntry(seq: entry.seq, json: json))
        }
        turn.events = events
        return turn
    }
}
