import AsyncHTTPClient
import MedViewCore
import MedViewModels
import MedViewTestSupport
import Synchronization
import Testing

/// Model calls that run at once each get their own connection to an HTTP/1.1 provider: one
/// patient's answer never waits in the client for another's to end.
@Suite(.timeLimit(.minutes(1))) struct ModelConnectionPoolTests {
    @Test func twentyAnswersInFlightAtOnceAllReachTheProvider() async throws {
        // Every answer sends its first delta and then stays open, as a model still writing does.
        let opening = OpenAICompatibleModelTests.chunk(content: "", role: true) + OpenAICompatibleModelTests.chunk(content: "Hello")
        let patient = ModelTimeouts(response: .seconds(30), idle: .seconds(30), total: .seconds(60))
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: [.send(opening), .hold])]) { server in
            let model = OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "m", timeouts: patient, retry: .none), sleep: { _ in })
            let count = 20
            let started = Count()
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<count {
                    group.addTask {
                        var first = true
                        do {
                            for try await event in model.stream(sampleRequest) where first {
                                if case .delta = event {
                                    first = false
                                    started.add()
                                }
                            }
                        } catch {}
                    }
                }
                // AsyncHTTPClient's shared client opens 8 connections per host and queues the rest
                // until one ends: only 8 of these answers would ever start.
                let deadline = ContinuousClock.now + .seconds(15)
                while started.value < count, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                #expect(started.value == count)
                #expect(server.requests.count == count)
                group.cancelAll()
            }
        }
    }

    @Test func theModelsClientAllowsAConnectionPerRunningCall() {
        // One answer and one triage for each running answer the engine admits by default.
        #expect(HTTPClient.modelConnectionsPerHost >= 2 * ChatConfiguration().maxRunningAnswers)
    }
}

private final class Count: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}
