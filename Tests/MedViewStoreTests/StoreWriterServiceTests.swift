import Foundation
import Logging
import MedViewCore
import MedViewStore
import ServiceLifecycle
import Testing

/// The store's writer as the application runs it: a `Service` in a `ServiceGroup` that, on
/// graceful shutdown, commits every acknowledged write and closes the database last.
@Suite("SQLite store writer as a Service", .timeLimit(.minutes(1)))
struct StoreWriterServiceTests {
    let alice = "u_alice"

    /// Stands for the services that write until they stop (the stream drain): on graceful
    /// shutdown it finishes one more turn, then returns.
    struct FinishesOnShutdown: Service {
        var store: SQLiteConversationStore
        var completion: TurnCompletion

        func run() async throws {
            try await gracefulShutdown()
            try await store.finishTurn(completion)
        }
    }

    /// Runs `group` until `body` returns, then shuts it down gracefully and waits for it to stop.
    private func whileRunning(_ group: ServiceGroup, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body()
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func gracefulShutdownKeepsAcknowledgedWritesAndClosesTheStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        let conversation = Sample.conversation(userId: alice)
        let finished = Sample.turn(conversationId: conversation.id, userId: alice)
        let streaming = Sample.turn(conversationId: conversation.id, userId: alice, at: 1)
        let events = Sample.events(3)

        let store = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        let group = ServiceGroup(services: [store.writer], logger: testLogger)
        try await whileRunning(group) { () throws in
            while !store.writer.isRunningAsService { try await Task.sleep(for: .milliseconds(1)) }
            #expect(try await store.beginTurn(finished, newConversation: conversation) == .created)
            try await store.finishTurn(TurnCompletion(
                streamId: finished.streamId, userId: alice, assistantText: "Acknowledged answer", status: .complete, events: events
            ))
            #expect(try await store.beginTurn(streaming, newConversation: nil) == .created)
        }

        // The group stopped: the store is closed and refuses writes.
        await #expect(throws: StoreError.self) { try await store.checkHealth() }
        await #expect(throws: StoreError.self) {
            try await store.beginTurn(Sample.turn(conversationId: conversation.id, userId: alice, at: 2), newConversation: nil)
        }
        try await store.close()

        let reopened = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        do {
            let stored = try #require(try await reopened.turn(streamId: finished.streamId, userId: alice))
            #expect(stored.assistantMessage.text == "Acknowledged answer")
            #expect(stored.assistantMessage.status == .complete)
            #expect(stored.events == events)
            #expect(try await reopened.turn(streamId: streaming.streamId, userId: alice)?.assistantMessage.status == .streaming)
            #expect(try await reopened.messages(conversationId: conversation.id, userId: alice).count == 4)
        } catch {
            try? await reopened.close()
            throw error
        }
        try await reopened.close()
    }

    @Test func writesOfServicesStoppingEarlierAreCommittedBeforeTheStoreCloses() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        let conversation = Sample.conversation(userId: alice)
        let turn = Sample.turn(conversationId: conversation.id, userId: alice)
        let lastWords = TurnCompletion(
            streamId: turn.streamId, userId: alice, assistantText: "Finished during shutdown", status: .cancelled, events: Sample.events(2)
        )

        let store = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        // The writer comes first, so it shuts down last.
        let group = ServiceGroup(services: [store.writer, FinishesOnShutdown(store: store, completion: lastWords)], logger: testLogger)
        try await whileRunning(group) { () throws in
            #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)
        }
        await #expect(throws: StoreError.self) { try await store.checkHealth() }

        let reopened = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        do {
            let stored = try #require(try await reopened.turn(streamId: turn.streamId, userId: alice))
            #expect(stored.assistantMessage.text == "Finished during shutdown")
            #expect(stored.assistantMessage.status == .cancelled)
            #expect(stored.events == lastWords.events)
        } catch {
            try? await reopened.close()
            throw error
        }
        try await reopened.close()
    }

    @Test func closeDuringABurstLosesNoAcknowledgedWrite() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("store.sqlite")
        let conversation = Sample.conversation(userId: alice)
        let store = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        try await store.createConversation(conversation)
        let turns = (0..<60).map { Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: "m\($0)") }
        // Each write either is acknowledged or fails as unavailable; close waits for the accepted ones.
        let acknowledged = await withTaskGroup(of: String?.self) { tasks in
            for (index, turn) in turns.enumerated() {
                tasks.addTask {
                    do {
                        _ = try await store.beginTurn(turn, newConversation: nil)
                        return turn.streamId
                    } catch {
                        #expect(error as? StoreError == .unavailable("store is closed"))
                        return nil
                    }
                }
                if index == 30 { tasks.addTask { try? await store.close(); return nil } }
            }
            var ids: [String] = []
            for await id in tasks { if let id { ids.append(id) } }
            return ids
        }
        try await store.close()

        let reopened = try await SQLiteConversationStore.open(path: path, logger: testLogger)
        do {
            for streamId in acknowledged {
                #expect(try await reopened.turn(streamId: streamId, userId: alice) != nil)
            }
        } catch {
            try? await reopened.close()
            throw error
        }
        try await reopened.close()
    }

    /// While the service runs, under bursts of new and finished turns from many tasks, every
    /// write is acknowledged (none is left waiting) and every acknowledged write is stored; a lone
    /// write after a burst is committed too.
    @Test func burstsOfWritesWhileTheServiceRunsAreAllCommitted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await SQLiteConversationStore.open(path: directory.path("store.sqlite"), logger: testLogger)
        let conversation = Sample.conversation(userId: alice)
        try await store.createConversation(conversation)
        let group = ServiceGroup(services: [store.writer], logger: testLogger)
        try await whileRunning(group) { () throws in
            while !store.writer.isRunningAsService { try await Task.sleep(for: .milliseconds(1)) }
            for round in 0..<3 {
                let turns = (0..<80).map { Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: "r\(round)m\($0)") }
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    for (index, turn) in turns.enumerated() {
                        tasks.addTask {
                            #expect(try await store.beginTurn(turn, newConversation: nil) == .created)
                            try await store.finishTurn(TurnCompletion(
                                streamId: turn.streamId, userId: self.alice, assistantText: "Answer \(index)", status: .complete, events: Sample.events(2)
                            ))
                        }
                    }
                    try await tasks.waitForAll()
                }
                for (index, turn) in turns.enumerated() {
                    let stored = try #require(try await store.turn(streamId: turn.streamId, userId: alice))
                    #expect(stored.assistantMessage.text == "Answer \(index)")
                    #expect(stored.assistantMessage.status == .complete)
                }
                // A lone write after the burst (the writer idle again) is committed too.
                let lone = Sample.turn(conversationId: conversation.id, userId: alice, clientMessageId: "lone\(round)")
                #expect(try await store.beginTurn(lone, newConversation: nil) == .created)
            }
        }
        try await store.close()
    }
}
