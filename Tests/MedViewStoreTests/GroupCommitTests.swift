import MedViewCore
import Testing

@Suite("Group commit of concurrent turns", .timeLimit(.minutes(1)))
struct GroupCommitTests {
    @Test("a burst mixing new turns, duplicates and foreign conversations gives each caller its own answer", arguments: [Stores.inMemory, Stores.sqlite, Stores.sqliteInServiceGroup])
    func mixedBurst(_ makeStore: StoreFactory) async throws {
        try await withStore(makeStore) { store in
            let mine = Sample.conversation(userId: "alice")
            let theirs = Sample.conversation(userId: "bob")
            try await store.createConversation(mine)
            try await store.createConversation(theirs)
            enum Outcome: Equatable { case created, duplicate(String), notFound }
            let outcomes = try await withThrowingTaskGroup(of: (Int, Outcome).self) { group in
                for i in 0..<120 {
                    group.addTask {
                        let turn: Turn
                        switch i % 4 {
                        case 0: turn = Sample.turn(conversationId: mine.id, userId: "alice", clientMessageId: "new-\(i)")
                        case 1: turn = Sample.turn(conversationId: mine.id, userId: "alice", clientMessageId: "same")
                        case 2: turn = Sample.turn(conversationId: theirs.id, userId: "alice", clientMessageId: "foreign-\(i)")
                        default:
                            let c = Sample.conversation(userId: "alice")
                            turn = Sample.turn(conversationId: c.id, userId: "alice", clientMessageId: "fresh-\(i)")
                            return (i, try await store.beginTurn(turn, newConversation: c) == .created ? .created : .notFound)
                        }
                        do {
                            switch try await store.beginTurn(turn, newConversation: nil) {
                            case .created: return (i, .created)
                            case .duplicate(let existing): return (i, .duplicate(existing.clientMessageId))
                            }
                        } catch StoreError.conversationNotFound {
                            return (i, .notFound)
                        }
                    }
                }
                var all: [Int: Outcome] = [:]
                for try await (i, outcome) in group { all[i] = outcome }
                return all
            }
            for (i, outcome) in outcomes {
                switch i % 4 {
                case 0, 3: #expect(outcome == .created)
                case 2: #expect(outcome == .notFound)
                default: break
                }
            }
            let same = outcomes.filter { $0.key % 4 == 1 }.map(\.value)
            #expect(same.filter { $0 == .created }.count == 1)
            #expect(same.filter { $0 == .duplicate("same") }.count == same.count - 1)
            // Exactly the created turns are stored: 30 new + 1 "same" in my conversation.
            #expect(try await store.messages(conversationId: mine.id, userId: "alice").count == 62)
            #expect(try await store.messages(conversationId: theirs.id, userId: "bob").isEmpty)
            #expect(try await store.conversations(userId: "alice", limit: 100).count == 31)
        }
    }
}
