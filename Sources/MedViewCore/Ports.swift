import Foundation
import MedViewProtocol

/// Durable storage of conversations, messages and stream replay logs.
///
/// Every read and write names the user: an implementation must never return or change
/// another user's data, and answers as if it did not exist. Implementations: SQLite (the
/// embedded default) and an in-memory store; all run `ConversationStoreConformance`.
public protocol ConversationStore: Sendable {
    /// Creates an empty conversation.
    func createConversation(_ conversation: Conversation) async throws
    /// The conversation if it exists and belongs to `userId`.
    func conversation(id: String, userId: String) async throws -> Conversation?
    /// The user's conversations, most recently updated first.
    func conversations(userId: String, limit: Int) async throws -> [Conversation]
    /// Deletes the conversation with all its messages and stream logs; `false` if it does not exist for this user.
    func deleteConversation(id: String, userId: String) async throws -> Bool
    /// The conversation's messages in the order they were written; empty if it is not the user's.
    func messages(conversationId: String, userId: String) async throws -> [StoredMessage]
    /// The conversation's latest `limit` messages (oldest first) and its safety state, in one
    /// read whose cost does not grow with the conversation; `nil` if it is not the user's.
    func recentContext(conversationId: String, userId: String, limit: Int) async throws -> ConversationContext?
    /// Saves the conversation's safety state (PHI: it names the patient's medicines); does
    /// nothing if the conversation is not the user's.
    func saveSafetyState(conversationId: String, userId: String, state: String) async throws

    /// Atomically stores a new turn: the conversation (when `newConversation` is given), the user
    /// message (status complete) and the assistant message (status streaming, empty text), and
    /// moves the conversation's `updatedAt` forward to the newer message time. If the user already
    /// has a turn with the same client message id, writes nothing and returns it as stored (dates
    /// round-trip to within a millisecond, so compare ids, not whole values).
    /// - Throws: ``StoreError/conversationNotFound`` if the conversation is not the user's.
    func beginTurn(_ turn: Turn, newConversation: Conversation?) async throws -> BeginTurnResult
    /// ``beginTurn(_:newConversation:)``, running `meanwhile` in the caller's task while the turn
    /// is being written, and returning both results once both are done (when the write fails,
    /// `meanwhile` may not have run). The default writes from a child task; a store with a writer
    /// of its own hands it the turn first, so the write starts before `meanwhile` does.
    ///
    /// `whenStored` is called once the turn is durably stored, before this returns, and only when
    /// it was (`created`: not for a duplicate or a failed write); a store with a writer of its own
    /// calls it on the writer's thread as soon as the write is committed, without waiting for the
    /// caller to resume (the engine sends the model's request from it). It must be quick and must
    /// not block.
    func beginTurn<T: Sendable>(_ turn: Turn, newConversation: Conversation?, whenStored: @escaping @Sendable () -> Void, meanwhile: () async -> T) async throws -> (BeginTurnResult, T)
    /// Records the end of a turn: assistant text and status, and the stream's replay log (replacing
    /// the events appended while it streamed). Only a turn still `streaming` is finished: does
    /// nothing if the stream is not the user's, no longer exists (its conversation was erased
    /// while it streamed), or has ended already (for example, recovered as interrupted by
    /// another process), so the first ending stored wins.
    func finishTurn(_ completion: TurnCompletion) async throws
    /// Adds events to the replay logs of running streams, all in one transaction (the group
    /// commit of ``StreamJournal``). Events already stored (same stream and sequence number) are
    /// skipped; events of a stream that is not the user's, or no longer `streaming`, are dropped.
    /// A store shared by several processes announces the streams it appended to (``StreamNotifier``).
    func appendStreamEvents(_ appends: [StreamAppend]) async throws
    /// The user's stream's persisted events after `seq` and its status; `nil` if it is not the user's.
    func streamEvents(streamId: String, userId: String, after seq: Int) async throws -> StreamEventsPage?
    /// Records that the server process `instanceId` is alive at `date`.
    func recordHeartbeat(instanceId: String, at date: Date) async throws
    /// Turns still `streaming` whose owner has recorded no heartbeat at or after `date` (or has
    /// none recorded at all), oldest first, at most `limit`, with their persisted events.
    func orphanedTurns(notAliveSince date: Date, limit: Int) async throws -> [Turn]
    /// The turn produced by `streamId`, if it is the user's.
    func turn(streamId: String, userId: String) async throws -> Turn?
    /// The user's turn begun with `clientMessageId`, if any (the idempotency lookup).
    func turn(clientMessageId: String, userId: String) async throws -> Turn?

    /// Throws when the store cannot serve requests.
    func checkHealth() async throws
    /// Closes connections; the store is unusable afterwards.
    func close() async throws
}

extension ConversationStore {
    public func beginTurn<T: Sendable>(_ turn: Turn, newConversation: Conversation?, whenStored: @escaping @Sendable () -> Void, meanwhile: () async -> T) async throws -> (BeginTurnResult, T) {
        async let written = { () async throws -> BeginTurnResult in
            let result = try await beginTurn(turn, newConversation: newConversation)
            if case .created = result { whenStored() }
            return result
        }()
        let other = await meanwhile()
        return (try await written, other)
    }

    /// ``beginTurn(_:newConversation:whenStored:meanwhile:)`` with no one to tell when the turn is stored.
    public func beginTurn<T: Sendable>(_ turn: Turn, newConversation: Conversation?, meanwhile: () async -> T) async throws -> (BeginTurnResult, T) {
        try await beginTurn(turn, newConversation: newConversation, whenStored: {}, meanwhile: meanwhile)
    }
}

/// Errors a store reports.
public enum StoreError: Error, Sendable, Equatable {
    /// The conversation named by a new turn does not exist for this user.
    case conversationNotFound
    /// The store could not be reached or failed; the detail never contains user data.
    case unavailable(String)
    /// A store shared by several processes that enforces the per-user stream limit refused a new
    /// turn: the user already has `limit` answers streaming (on any process).
    case tooManyStreams(limit: Int)
}

/// Per-user connection counts shared by every process on one store, so the connection limit
/// holds across instances (implemented by the PostgreSQL store; one process needs none).
public protocol SharedConnectionLimit: Sendable {
    /// Records an open connection if the user has fewer than the limit open on live processes;
    /// returns whether it was recorded.
    func openConnection(id: String, userId: String, instanceId: String) async throws -> Bool
    /// Forgets an open connection.
    func closeConnection(id: String) async throws
}

/// A WebSocket connection that a gateway holds open for the service (API Gateway in the
/// serverless shape): every message arrives in a fresh, stateless invocation, so who the
/// connection belongs to, and until when its token holds, live in the shared store.
public struct GatewayConnection: Sendable, Equatable {
    public var id: String
    public var userId: String
    /// When the token the connection was opened (or last refreshed) with expires.
    public var expiresAt: Date
    public var openedAt: Date

    public init(id: String, userId: String, expiresAt: Date, openedAt: Date) {
        self.id = id
        self.userId = userId
        self.expiresAt = expiresAt
        self.openedAt = openedAt
    }
}

/// The gateway's open connections, shared by every invocation (implemented by the PostgreSQL store).
public protocol GatewayConnectionStore: Sendable {
    /// Records `connection` if its user has fewer than `limit` connections opened within
    /// `maxAge` (older ones are gone: the gateway's longest connection); returns whether it was
    /// recorded. Counting and recording are one decision across invocations.
    func openGatewayConnection(_ connection: GatewayConnection, limit: Int, maxAge: Duration) async throws -> Bool
    /// The connection `id`, if it is open.
    func gatewayConnection(id: String) async throws -> GatewayConnection?
    /// Moves the connection's token expiry (after `auth.refresh`); `false` if it is not open.
    func refreshGatewayConnection(id: String, expiresAt: Date) async throws -> Bool
    /// Forgets the connection.
    func closeGatewayConnection(id: String) async throws
}

/// One message of the context sent to a model.
public struct ModelMessage: Sendable, Equatable {
    public var role: MessageRole
    public var text: String

    public init(role: MessageRole, text: String) {
        self.role = role
        self.text = text
    }
}

/// What a model is asked.
public struct ModelRequest: Sendable, Equatable {
    public var system: String
    /// Earlier turns, oldest first, ending with the new user message.
    public var messages: [ModelMessage]
    public var maxOutputTokens: Int
    public var temperature: Double?

    public init(system: String, messages: [ModelMessage], maxOutputTokens: Int, temperature: Double? = nil) {
        self.system = system
        self.messages = messages
        self.maxOutputTokens = maxOutputTokens
        self.temperature = temperature
    }
}

/// Why a model stopped.
public enum ModelStopReason: String, Sendable, Equatable {
    case endTurn = "end_turn"
    case maxTokens = "max_tokens"
    case stopSequence = "stop_sequence"
    case contentFiltered = "content_filtered"
}

/// One item of a model's streamed answer.
public enum ModelEvent: Sendable, Equatable {
    /// More answer text.
    case delta(String)
    /// Token counts (may come more than once; the last one wins).
    case usage(Usage)
    /// The model finished, and why.
    case stop(ModelStopReason)
}

/// A typed model failure.
public struct ModelError: Error, Sendable, Equatable {
    /// What went wrong, in wire terms.
    public enum Kind: Sendable, Equatable {
        case throttled
        case unavailable
        case invalidRequest
        case failed
    }

    public var kind: Kind
    /// Whether the same request may succeed later.
    public var retryable: Bool
    /// Diagnostic detail for logs; never contains user text.
    public var detail: String
    /// How long the provider asked us to wait before trying again (its `Retry-After`), if it said.
    public var retryAfter: Duration?

    public init(kind: Kind, retryable: Bool, detail: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.retryable = retryable
        self.detail = detail
        self.retryAfter = retryAfter
    }

    /// The wire error code for this failure.
    public var errorCode: ErrorCode {
        switch kind {
        case .throttled: .modelThrottled
        case .unavailable: .modelUnavailable
        case .invalidRequest, .failed: .modelError
        }
    }
}

/// A language model that streams its answer.
///
/// The returned sequence yields deltas, usage and one stop reason, or throws a ``ModelError``.
/// Cancelling the consuming task must stop the model promptly.
public protocol ChatModel: Sendable {
    /// What the client is told about this model.
    var descriptor: ModelDescriptor { get }
    /// Starts answering `request`.
    func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error>
    /// The whole text of a short reply (a classification of a few tokens, such as the safety
    /// triage's one word), read at once rather than streamed. An HTTP model asks its provider for
    /// an unstreamed response, which spares the event framing of every token; the default reads
    /// ``stream(_:)`` to its end. Throws what ``stream(_:)`` would.
    func reply(_ request: ModelRequest) async throws -> String
    /// Answers `request` by handing each event to `sink` as it is read, and returns when the
    /// answer is complete or `sink` declined one (returned `false`: nothing more is read and the
    /// request is given up). Throws what ``stream(_:)`` would; cancelling the calling task stops
    /// the model promptly (the call then returns or throws `CancellationError`).
    ///
    /// `sink` is called in order, one event at a time, never after this returns, and on whatever
    /// thread the model reads on: an HTTP model calls it on its connection's event loop, where the
    /// response is decoded, so an event reaches the answer without waking a task. It must be quick
    /// and must not block. The default reads ``stream(_:)``.
    func stream(_ request: ModelRequest, into sink: @escaping ModelEventSink) async throws
    /// Makes a call to `request` ready without sending it: the request built and signed, a
    /// connection to the provider taken or being made, nothing of the request sent. The engine
    /// does this while the patient's message is being stored, and sends the call the moment it is
    /// stored (``PreparedModelCall/send()``). `nil` when the model has nothing to make ready
    /// (then ``stream(_:into:)`` is called as usual); the default.
    func prepare(_ request: ModelRequest) async -> (any PreparedModelCall)?
}

/// A model call made ready by ``ChatModel/prepare(_:)`` and not sent yet. Either ``send()`` and
/// then ``answer(into:)``, or ``discard()``.
public protocol PreparedModelCall: Sendable {
    /// Sends the request, once (later calls do nothing); quick, from any thread.
    func send()
    /// Sends the request if not yet sent, and reads the answer into `sink` as
    /// ``ChatModel/stream(_:into:)`` would, retries included.
    func answer(into sink: @escaping ModelEventSink) async throws
    /// Gives the call up without sending the request (its turn was not stored).
    func discard()
}

/// What ``ChatModel/stream(_:into:)`` hands a model's events to: `false` stops the answer.
public typealias ModelEventSink = @Sendable (ModelEvent) -> Bool

extension ChatModel {
    /// Nothing to make ready: the model is called through ``stream(_:into:)``.
    public func prepare(_ request: ModelRequest) async -> (any PreparedModelCall)? { nil }

    /// Reads ``stream(_:)`` to its end and joins its text.
    public func reply(_ request: ModelRequest) async throws -> String {
        var text = ""
        for try await event in stream(request) {
            if case .delta(let piece) = event { text += piece }
        }
        return text
    }

    /// Reads ``stream(_:)`` into `sink`, until its end or the first event `sink` declines.
    public func stream(_ request: ModelRequest, into sink: @escaping ModelEventSink) async throws {
        for try await event in stream(request) {
            guard sink(event) else { return }
        }
    }
}

/// Turns a bearer token into an identity, or refuses it.
public protocol TokenVerifier: Sendable {
    /// Verifies signature, issuer, audience and expiry.
    func verify(_ token: String) async throws(AuthError) -> VerifiedIdentity
}

/// Why a token was refused. Messages never include the token.
public enum AuthError: Error, Sendable, Equatable {
    case missing
    case invalid
    case expired

    /// The wire code for this refusal.
    public var errorCode: ErrorCode {
        self == .expired ? .tokenExpired : .unauthorized
    }

    /// A message safe to send the client.
    public var message: String {
        switch self {
        case .missing: "A bearer token is required."
        case .invalid: "The token is not valid."
        case .expired: "The token has expired."
        }
    }
}
