import Foundation
import Synchronization

/// A ``ConversationStore`` that keeps everything in process memory.
///
/// Meant for unit tests and benchmarks: nothing survives the process. It follows the same
/// contract as the SQLite store (both run the conformance suite): every read and write is
/// scoped to the named user, `beginTurn` is atomic and idempotent per client message id, and
/// messages come back in the order they were written.
public final class InMemoryConversationStore: ConversationStore {
    private struct ClientKey: Hashable {
        var userId: String
        var clientMessageId: String
    }

    private struct Entry<Value> {
        var value: Value
        /// Insertion order; breaks ties between equal timestamps.
        var order: Int
    }

    private struct State {
        var conversations: [String: Entry<Conversation>] = [:]
        /// Turns by stream id.
        var turns: [String: Turn] = [:]
        /// Stream ids of each conversation's turns, in the order they were begun.
        var streamsByConversation: [String: [String]] = [:]
        var streamByClientKey: [ClientKey: String] = [:]
        var messageIds: Set<String> = []
        var nextOrder = 0
        var isClosed = false
        var heartbeats: [String: Date] = [:]
        var safetyStates: [String: String] = [:]
    }

    private let state = Mutex(State())

    /// Creates an empty store.
    public init() {}

    /// Runs `body` on the state, or throws if the store was closed.
    private func withOpenState<T: Sendable>(_ body: (inout State) throws(StoreError) -> T) throws(StoreError) -> T {
        try state.withLock { (state: inout State) throws(StoreError) -> T in
            guard !state.isClosed else { throw StoreError.unavailable("store is closed") }
            return try body(&state)
        }
    }

    /// Creates an empty conversation; throws ``StoreError/unavailable(_:)`` if its id is taken.
    public func createConversation(_ conversation: Conversation) async throws {
        try withOpenState { state throws(StoreError) in
            guard state.conversations[conversation.id] == nil else {
                throw StoreError.unavailable("conversation id already exists")
            }
            state.conversations[conversation.id] = Entry(value: conversation, order: state.nextOrder)
            state.nextOrder += 1
        }
    }

    /// The conversation if it exists and belongs to `userId`.
    public func conversation(id: String, userId: String) async throws -> Conversation? {
        try withOpenState { state in
            guard let entry = state.conversations[id], entry.value.userId == userId else { return nil }
            return entry.value
        }
    }

    /// The user's conversations, most recently updated first (latest created first on ties).
    public func conversations(userId: String, limit: Int) async throws -> [Conversation] {
        try withOpenState { state in
            guard limit > 0 else { return [] }
            let mine = state.conversations.values.filter { $0.value.userId == userId }
            let sorted = mine.sorted { a, b in
                a.value.updatedAt != b.value.updatedAt ? a.value.updatedAt > b.value.updatedAt : a.order > b.order
            }
            return sorted.prefix(limit).map(\.value)
        }
    }

    /// Deletes the conversation, its turns, messages and replay logs; `false` if it is not the user's.
    public func deleteConversation(id: String, userId: String) async throws -> Bool {
        try withOpenState { state in
            guard let entry = state.conversations[id], entry.value.userId == userId else { return false }
            state.conversations[id] = nil
            state.safetyStates[id] = nil
            for streamId in state.streamsByConversation.removeValue(forKey: id) ?? [] {
                guard let turn = state.turns.removeValue(forKey: streamId) else { continue }
                state.streamByClientKey[ClientKey(userId: turn.userId, clientMessageId: turn.clientMessageId)] = nil
                state.messageIds.remove(turn.userMessage.id)
                state.messageIds.remove(turn.assistantMessage.id)
            }
            return true
        }
    }

    /// The conversation's messages in write order; empty if it is not the user's.
    public func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        try withOpenState { state in
            guard let entry = state.conversations[conversationId], entry.value.userId == userId else { return [] }
            let streams = state.streamsByConversation[conversationId] ?? []
            return streams.flatMap { streamId -> [StoredMessage] in
                guard let turn = state.turns[streamId] else { return [] }
                return [turn.userMessage, turn.assistantMessage]
            }
        }
    }

    /// Atomically stores a new turn (and `newConversation`), or returns the user's existing turn
    /// with the same client message id without writing anything.
    ///
    /// The stored messages take their conversation, user and stream ids from `turn`; the user
    /// message is stored `complete`, the assistant message `streaming` with empty text.
    public func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        try withOpenState { state throws(StoreError) in
            let key = ClientKey(userId: turn.userId, clientMessageId: turn.clientMessageId)
            if let streamId = state.streamByClientKey[key], let existing = state.turns[streamId] {
                return .duplicate(existing)
            }
            // Validate everything before the first write so that a failure writes nothing.
            if let newConversation, state.conversations[newConversation.id] != nil {
                throw StoreError.unavailable("conversation id already exists")
            }
            let owner: String?
            if let newConversation, newConversation.id == turn.conversationId {
                owner = newConversation.userId
            } else {
                owner = state.conversations[turn.conversationId]?.value.userId
            }
            guard owner == turn.userId else { throw StoreError.conversationNotFound }
            guard state.turns[turn.streamId] == nil else {
                throw StoreError.unavailable("stream id already exists")
            }
            guard turn.userMessage.id != turn.assistantMessage.id,
                  !state.messageIds.contains(turn.userMessage.id),
                  !state.messageIds.contains(turn.assistantMessage.id)
            else {
                throw StoreError.unavailable("message id already exists")
            }

            if let newConversation {
                state.conversations[newConversation.id] = Entry(value: newConversation, order: state.nextOrder)
                state.nextOrder += 1
            }
            let stored = Self.normalized(turn)
            state.turns[turn.streamId] = stored
            state.streamsByConversation[turn.conversationId, default: []].append(turn.streamId)
            state.streamByClientKey[key] = turn.streamId
            state.messageIds.insert(turn.userMessage.id)
            state.messageIds.insert(turn.assistantMessage.id)
            if var entry = state.conversations[turn.conversationId] {
                entry.value.updatedAt = max(entry.value.updatedAt, stored.userMessage.createdAt, stored.assistantMessage.createdAt)
                state.conversations[turn.conversationId] = entry
            }
            return .created
        }
    }

    /// Stores the assistant text and status and the replay log (replacing any earlier one).
    /// Does nothing if the stream is not the user's (for example, its conversation was deleted).
    public func finishTurn(_ completion: TurnCompletion) async throws {
        try withOpenState { state throws(StoreError) in
            guard var turn = state.turns[completion.streamId], turn.userId == completion.userId,
                  turn.assistantMessage.status == .streaming else { return }
            let events = completion.events.sorted { $0.seq < $1.seq }
            for (previous, next) in zip(events, events.dropFirst()) where previous.seq == next.seq {
                throw StoreError.unavailable("duplicate event sequence number")
            }
            turn.assistantMessage.text = completion.assistantText
            turn.assistantMessage.status = completion.status
            turn.events = events
            state.turns[completion.streamId] = turn
        }
    }

    /// The turn produced by `streamId`, if it is the user's.
    public func turn(streamId: String, userId: String) async throws -> Turn? {
        try withOpenState { state in
            guard let turn = state.turns[streamId], turn.userId == userId else { return nil }
            return turn
        }
    }

    /// The user's turn begun with `clientMessageId`, if any.
    public func turn(clientMessageId: String, userId: String) async throws -> Turn? {
        try withOpenState { state in
            state.streamByClientKey[ClientKey(userId: userId, clientMessageId: clientMessageId)].flatMap { state.turns[$0] }
        }
    }

    /// The latest `limit` messages and the saved safety state.
    public func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? {
        guard try await conversation(id: conversationId, userId: userId) != nil else { return nil }
        let all = try await messages(conversationId: conversationId, userId: userId)
        let state = try withOpenState { $0.safetyStates[conversationId] }
        return ConversationContext(messages: Array(all.suffix(max(0, limit))), hasOlder: all.count > limit, safetyState: state)
    }

    /// Saves the conversation's safety state.
    public func saveSafetyState(conversationId: String, userId: String, state: String) async throws {
        try withOpenState { s in
            guard let entry = s.conversations[conversationId], entry.value.userId == userId else { return }
            s.safetyStates[conversationId] = state
        }
    }

    /// Appends events to running streams' logs, skipping those already stored; a stream that is
    /// not the user's or no longer streams gets nothing.
    public func appendStreamEvents(_ appends: [StreamAppend]) async throws {
        try withOpenState { state in
            for append in appends {
                guard var turn = state.turns[append.streamId], turn.userId == append.userId,
                      turn.assistantMessage.status == .streaming else { continue }
                let stored = Set(turn.events.map(\.seq))
                turn.events += append.events.filter { !stored.contains($0.seq) }
                turn.events.sort { $0.seq < $1.seq }
                state.turns[append.streamId] = turn
            }
        }
    }

    /// The stream's events after `seq` and its status, if it is the user's.
    public func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? {
        try withOpenState { state in
            guard let turn = state.turns[streamId], turn.userId == userId else { return nil }
            return StreamEventsPage(conversationId: turn.conversationId, status: turn.assistantMessage.status, events: turn.events.filter { $0.seq > seq })
        }
    }

    /// Records the heartbeat of `instanceId`.
    public func recordHeartbeat(instanceId: String, at date: Date) async throws {
        try withOpenState { state in
            state.heartbeats[instanceId] = max(state.heartbeats[instanceId] ?? date, date)
        }
    }

    /// Streaming turns whose owner has been silent since `date`.
    public func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] {
        try withOpenState { state in
            let orphans = state.turns.values.filter { turn in
                guard turn.assistantMessage.status == .streaming else { return false }
                guard let owner = turn.ownerInstanceId, let beat = state.heartbeats[owner] else { return true }
                return beat < date
            }
            return Array(orphans.sorted { $0.assistantMessage.createdAt < $1.assistantMessage.createdAt }.prefix(limit))
        }
    }

    /// Throws ``StoreError/unavailable(_:)`` once the store is closed.
    public func checkHealth() async throws {
        try withOpenState { _ in }
    }

    /// Drops all data; later calls throw ``StoreError/unavailable(_:)``. Closing twice is harmless.
    public func close() async throws {
        state.withLock { state in
            state = State()
            state.isClosed = true
        }
    }

    /// The turn as stored: ids taken from the turn, the user message complete, the assistant
    /// message streaming and empty, no replay log yet.
    private static func normalized(_ turn: Turn) -> Turn {
        var stored = turn
        for keyPath in [\Turn.userMessage, \Turn.assistantMessage] {
            stored[keyPath: keyPath].conversationId = turn.conversationId
            stored[keyPath: keyPath].userId = turn.userId
            stored[keyPath: keyPath].streamId = turn.streamId
        }
        stored.userMessage.role = .user
        stored.userMessage.status = .complete
        stored.assistantMessage.role = .assistant
        stored.assistantMessage.status = .streaming
        stored.assistantMessage.text = ""
        stored.events = []
        return stored
    }
}
