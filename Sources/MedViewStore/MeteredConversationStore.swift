import CoreMetrics
import Foundation
import MedViewCore

/// A ``ConversationStore`` that times every call to the store it wraps
/// (`medview_store_operation_seconds{operation}`, docs/METRICS.md) through the process's
/// `MetricsSystem`, failures included. The server wraps the database store itself (under
/// encryption), so the figures are the database's, journal writes, heartbeats and recovery
/// included; sealing and key unwrapping show in `medview_key_provider_seconds`. Labels are
/// operation names only, never ids or text.
public final class MeteredConversationStore: ConversationStore {
    /// The store whose calls are timed.
    public let base: any ConversationStore
    private let timers: [Operation: CoreMetrics.Timer]

    /// The `operation` label of each call.
    enum Operation: String, CaseIterable {
        case createConversation = "create_conversation"
        case conversation
        case conversations
        case deleteConversation = "delete_conversation"
        case messages
        case recentContext = "recent_context"
        case saveSafetyState = "save_safety_state"
        case beginTurn = "begin_turn"
        case finishTurn = "finish_turn"
        case appendStreamEvents = "append_stream_events"
        case streamEvents = "stream_events"
        case recordHeartbeat = "record_heartbeat"
        case orphanedTurns = "orphaned_turns"
        case turn
        case checkHealth = "check_health"
    }

    public init(_ base: any ConversationStore) {
        self.base = base
        var timers: [Operation: CoreMetrics.Timer] = [:]
        for operation in Operation.allCases {
            timers[operation] = CoreMetrics.Timer(label: "medview_store_operation_seconds", dimensions: [("operation", operation.rawValue)])
        }
        self.timers = timers
    }

    private func timed<T>(_ operation: Operation, _ body: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        defer { timers[operation]?.recordNanoseconds(MeteredKeyProvider.nanoseconds(.now - started)) }
        return try await body()
    }

    public func createConversation(_ conversation: Conversation) async throws {
        try await timed(.createConversation) { try await base.createConversation(conversation) }
    }

    public func conversation(id: String, userId: String) async throws -> Conversation? {
        try await timed(.conversation) { try await base.conversation(id: id, userId: userId) }
    }

    public func conversations(userId: String, limit: Int) async throws -> [Conversation] {
        try await timed(.conversations) { try await base.conversations(userId: userId, limit: limit) }
    }

    public func deleteConversation(id: String, userId: String) async throws -> Bool {
        try await timed(.deleteConversation) { try await base.deleteConversation(id: id, userId: userId) }
    }

    public func messages(conversationId: String, userId: String) async throws -> [StoredMessage] {
        try await timed(.messages) { try await base.messages(conversationId: conversationId, userId: userId) }
    }

    public func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext? {
        try await timed(.recentContext) { try await base.recentContext(conversationId: conversationId, userId: userId, limit: limit) }
    }

    public func saveSafetyState(conversationId: String, userId: String, state: String) async throws {
        try await timed(.saveSafetyState) { try await base.saveSafetyState(conversationId: conversationId, userId: userId, state: state) }
    }

    public func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult {
        try await timed(.beginTurn) { try await base.beginTurn(turn, newConversation: newConversation) }
    }

    /// Timed until both the write and `meanwhile` are done (what the caller waits for).
    public func beginTurn<T: Sendable>(_ turn: Turn, newConversation: Conversation?, whenStored: @escaping @Sendable () -> Void, meanwhile: () async -> T) async throws -> (BeginTurnResult, T) {
        try await timed(.beginTurn) { try await base.beginTurn(turn, newConversation: newConversation, whenStored: whenStored, meanwhile: meanwhile) }
    }

    public func finishTurn(_ completion: TurnCompletion) async throws {
        try await timed(.finishTurn) { try await base.finishTurn(completion) }
    }

    public func appendStreamEvents(_ appends: [StreamAppend]) async throws {
        try await timed(.appendStreamEvents) { try await base.appendStreamEvents(appends) }
    }

    public func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage? {
        try await timed(.streamEvents) { try await base.streamEvents(streamId: streamId, userId: userId, after: seq) }
    }

    public func recordHeartbeat(instanceId: String, at date: Date) async throws {
        try await timed(.recordHeartbeat) { try await base.recordHeartbeat(instanceId: instanceId, at: date) }
    }

    public func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn] {
        try await timed(.orphanedTurns) { try await base.orphanedTurns(notAliveSince: date, limit: limit) }
    }

    public func turn(streamId: String, userId: String) async throws -> Turn? {
        try await timed(.turn) { try await base.turn(streamId: streamId, userId: userId) }
    }

    public func turn(clientMessageId: String, userId: String) async throws -> Turn? {
        try await timed(.turn) { try await base.turn(clientMessageId: clientMessageId, userId: userId) }
    }

    public func checkHealth() async throws {
        try await timed(.checkHealth) { try await base.checkHealth() }
    }

    public func close() async throws {
        try await base.close()
    }
}
