import Foundation
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewStandIns
import MedViewTestSupport
import NIOPosix
import Synchronization
import Testing

/// `ChatModel.stream(_:into:)`: an HTTP model hands its answer's events straight to the caller's
/// sink on the connection's event loop, as the response is decoded (the engine's path: no task is
/// woken between the model's bytes and the answer's pipeline), with the retries, cancellation and
/// typed errors of `stream(_:)`; a sink that declines an event ends the request there.
@Suite(.timeLimit(.minutes(1))) struct EventSinkTests {
    /// What a sink saw, and where it ran.
    final class Sink: Sendable {
        private let state = Mutex<(events: [ModelEvent], offLoop: Int, afterDecline: Int, declined: Bool)>(([], 0, 0, false))
        /// The sink declines the first delta that contains this, if given.
        let declineOn: String?

        init(declineOn: String? = nil) { self.declineOn = declineOn }

        var events: [ModelEvent] { state.withLock { $0.events } }
        var text: String { events.reduce(into: "") { if case .delta(let t) = $1 { $0 += t } } }
        /// Calls made on a thread that is no event loop.
        var offLoop: Int { state.withLock { $0.offLoop } }
        var afterDecline: Int { state.withLock { $0.afterDecline } }

        var call: ModelEventSink {
            { event in
                let onLoop = MultiThreadedEventLoopGroup.currentEventLoop != nil
                return self.state.withLock { s in
                    if s.declined { s.afterDecline += 1 }
                    if !onLoop { s.offLoop += 1 }
                    s.events.append(event)
                    if let word = self.declineOn, case .delta(let text) = event, text.contains(word) {
                        s.declined = true
                        return false
                    }
                    return true
                }
            }
        }
    }

    /// Both HTTP clients a model may call through (`MEDVIEW_MODEL_HTTP_CLIENT`).
    static let clients = ["lean", "asynchttpclient"]

    func openAI(_ server: LoopbackHTTPServer, retry: RetryPolicy = fastRetry, timeouts: ModelTimeouts = fastTimeouts, client: String = "lean") throws -> OpenAICompatibleModel {
        OpenAICompatibleModel(
            configuration: .init(baseURL: server.baseURL + "/v1", model: "test-model", apiKey: APIKey("sk-test"), timeouts: timeouts, retry: retry),
            client: try #require(ModelHTTP.named(client)), sleep: { _ in }
        )
    }

    func anthropic(_ server: LoopbackHTTPServer) -> AnthropicModel {
        AnthropicModel(configuration: .init(model: "claude-test", apiKey: APIKey("sk-ant-test"), baseURL: server.baseURL, timeouts: fastTimeouts, retry: fastRetry), sleep: { _ in })
    }

    @Test(arguments: clients) func theWholeAnswerReachesTheSinkInOrderOnTheEventLoopAsAStreamWouldHaveIt(_ client: String) async throws {
        let replies: [LoopbackHTTPServer.Reply] = [.events(OpenAICompatibleModelTests.answer, piece: 7), .events(OpenAICompatibleModelTests.answer, piece: 7)]
        try await LoopbackHTTPServer.with(replies) { server in
            let sink = Sink()
            try await openAI(server, client: client).stream(sampleRequest, into: sink.call)
            let streamed = await collect(try openAI(server, client: client).stream(sampleRequest))
            #expect(sink.text == "Rest and 🍵 fluids.")
            #expect(sink.text == streamed.text)
            #expect(sink.events.filter { if case .delta = $0 { false } else { true } } == streamed.events.filter { if case .delta = $0 { false } else { true } })
            #expect(sink.events.last == .stop(.endTurn))
            #expect(sink.offLoop == 0, "\(sink.offLoop) of \(sink.events.count) events were handed on off the event loop")
        }
        try await LoopbackHTTPServer.with([.events(AnthropicModelTests.answer)]) { server in
            let sink = Sink()
            try await anthropic(server).stream(sampleRequest, into: sink.call)
            #expect(sink.text == "Drink water 💧 often.")
            #expect(sink.offLoop == 0)
        }
    }

    @Test(arguments: clients) func theFirstTextIsHandedOnAloneBeforeTheRestOfItsReadIsDecoded(_ client: String) async throws {
        // A fast model writes its whole answer at once: the patient's first words go on the moment
        // they are decoded; the rest of the read follows joined, in a few batches, not a hundred.
        let words = (0..<100).map { "word\($0) " }
        let body = OpenAICompatibleModelTests.chunk(content: "", role: true) + words.map { OpenAICompatibleModelTests.chunk(content: $0) }.joined()
            + OpenAICompatibleModelTests.chunk(content: nil, finish: "stop") + OpenAICompatibleModelTests.done
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: [.send(body)])]) { server in
            let sink = Sink()
            try await openAI(server, client: client).stream(sampleRequest, into: sink.call)
            let deltas = sink.events.compactMap { if case .delta(let text) = $0 { text } else { nil } }
            #expect(deltas.first == "word0 ")
            #expect(sink.text == words.joined())
            #expect(deltas.count < 20, "\(deltas.count) batches for one write")
            #expect(sink.offLoop == 0)
        }
    }

    @Test func aBedrockAnswerReachesTheSinkWhole() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let sink = Sink()
            try await bedrockModel(standIn.endpoint).stream(ask("How do I sleep better?"), into: sink.call)
            #expect(sink.text == StandInScript.defaultText)
            #expect(sink.events.contains(.stop(.endTurn)))
            #expect(sink.offLoop == 0)
        }
    }

    /// For the declining tests: silence limits past the server's 30 s hold, so that only declining
    /// can end the call before it (the tests check it ends well before). With 5 s limits, a CI run
    /// whose other suites held Swift's threads for that long failed them: the loopback server
    /// writes its reply from a task.
    static let patientTimeouts = ModelTimeouts(response: .seconds(40), idle: .seconds(40), total: .seconds(50))

    /// Streams a reply of `steps` into a sink that declines the delta holding "STOP"; checks that
    /// declining ended the call long before the server's hold or any silence limit, that nothing
    /// reached the sink after it, and that the connection was given up (`more` checks the server
    /// further); returns the text the sink took.
    func declining(_ steps: [LoopbackHTTPServer.Step], client: String, _ more: (LoopbackHTTPServer) -> Void = { _ in }) async throws -> String {
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: steps)]) { server in
            let sink = Sink(declineOn: "STOP")
            let started = ContinuousClock.now
            try await openAI(server, retry: .none, timeouts: Self.patientTimeouts, client: client).stream(sampleRequest, into: sink.call)
            #expect(ContinuousClock.now - started < .seconds(29))
            #expect(sink.afterDecline == 0)
            #expect(await server.waitForClientClosures(1, timeout: .seconds(30)))
            more(server)
            return sink.text
        }
    }

    @Test(arguments: clients) func aDeclinedEventEndsTheRequestThereAndClosesTheConnection(_ client: String) async throws {
        // The server sends a delta, then (in a later read) the one the sink declines, then holds the
        // response open: declining must end the call at once (not at the silence limit) and give
        // up the connection.
        let steps: [LoopbackHTTPServer.Step] = [
            .send(OpenAICompatibleModelTests.chunk(content: "", role: true) + OpenAICompatibleModelTests.chunk(content: "Fine so far. ")), .pause(.milliseconds(50)),
            .send(OpenAICompatibleModelTests.chunk(content: "STOP here")), .hold,
        ]
        let text = try await declining(steps, client: client) { server in #expect(server.requests.count == 1) }
        #expect(text == "Fine so far. STOP here")
    }

    @Test(arguments: clients) func decliningTheFirstDeltaWhileItsReadIsDecodedEndsTheRequest(_ client: String) async throws {
        // The first delta is handed on in the middle of decoding its read: declining it there
        // must stop the decoding as well as the request.
        let rest = (0..<50).map { OpenAICompatibleModelTests.chunk(content: "more\($0) ") }.joined()
        let steps: [LoopbackHTTPServer.Step] = [.send(OpenAICompatibleModelTests.chunk(content: "", role: true) + OpenAICompatibleModelTests.chunk(content: "STOP at once. ") + rest), .hold]
        #expect(try await declining(steps, client: client) == "STOP at once. ")
    }

    @Test func aThrottledAttemptIsRetriedBeforeTheFirstDelta() async throws {
        let throttled = LoopbackHTTPServer.Reply.error(429, #"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#)
        try await LoopbackHTTPServer.with([throttled, .events(OpenAICompatibleModelTests.answer)]) { server in
            let sink = Sink()
            try await openAI(server).stream(sampleRequest, into: sink.call)
            #expect(sink.text == "Rest and 🍵 fluids.")
            #expect(server.requests.count == 2)
        }
    }

    @Test func aFailureIsThrownTypedWithWhatCameBeforeItHandedOn() async throws {
        let steps: [LoopbackHTTPServer.Step] = [.send(OpenAICompatibleModelTests.chunk(content: "", role: true) + OpenAICompatibleModelTests.chunk(content: "Partial")), .pause(.milliseconds(50)), .cut]
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: steps)]) { server in
            let sink = Sink()
            let error = await #expect(throws: ModelError.self) {
                try await openAI(server).stream(sampleRequest, into: sink.call)
            }
            #expect(sink.text == "Partial")
            // Text had been handed on: the failure is not retried (the answer would repeat).
            #expect(server.requests.count == 1)
            #expect(error?.retryable == true)
        }
    }

    @Test func cancellingTheCallerClosesTheConnectionPromptly() async throws {
        var steps: [LoopbackHTTPServer.Step] = [.send(OpenAICompatibleModelTests.chunk(content: "First"))]
        for _ in 0..<400 { steps += [.pause(.milliseconds(100)), .send(OpenAICompatibleModelTests.chunk(content: " more"))] }
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: steps)]) { server in
            let firstDelta = AsyncStream<Void>.makeStream()
            let model = try openAI(server)
            let caller = Task {
                try await model.stream(sampleRequest) { event in
                    if case .delta = event { firstDelta.continuation.yield() }
                    return true
                }
            }
            var iterator = firstDelta.stream.makeAsyncIterator()
            await iterator.next()
            caller.cancel()
            #expect(await server.waitForClientClosures(1, timeout: .seconds(30)))
            await #expect(throws: CancellationError.self) { try await caller.value }
            #expect(server.requests.count == 1)
        }
    }

    @Test func theDefaultReadsTheStreamAndStopsAtADeclinedEvent() async throws {
        // Four scalars a delta: "one ", "two ", "STOP", " fou", "r".
        let model = ScriptedModel(configuration: .init(deltaDelay: .zero, scalarsPerDelta: 4, reply: "one two STOP four"))
        let sink = Sink(declineOn: "STOP")
        try await model.stream(sampleRequest, into: sink.call)
        #expect(sink.text == "one two STOP")
        #expect(sink.afterDecline == 0)
    }
}
