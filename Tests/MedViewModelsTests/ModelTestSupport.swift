import MedViewTestSupport
import Testing
import MedViewCore
import MedViewModels
import MedViewProtocol

/// What a model stream produced: its events, and the error it ended with (if any).
struct Collected {
    var events: [ModelEvent]
    var error: (any Error)?

    var text: String {
        events.reduce(into: "") { if case .delta(let t) = $1 { $0 += t } }
    }

    var deltas: [String] {
        events.compactMap { if case .delta(let t) = $0 { t } else { nil } }
    }

    var modelError: ModelError? { error as? ModelError }

    var stop: ModelStopReason? {
        events.lazy.compactMap { if case .stop(let r) = $0 { r } else { nil } }.last
    }

    var usage: Usage? {
        events.lazy.compactMap { if case .usage(let u) = $0 { u } else { nil } }.last
    }
}

func collect(_ stream: AsyncThrowingStream<ModelEvent, any Error>) async -> Collected {
    var events: [ModelEvent] = []
    do {
        for try await event in stream { events.append(event) }
        return Collected(events: events, error: nil)
    } catch {
        return Collected(events: events, error: error)
    }
}

/// A patient question with a recognisable phrase, so tests can check it never reaches error details.
let patientText = "I take warfarin and my name is Jane Example"

let sampleRequest = ModelRequest(
    system: "You are a careful health companion.",
    messages: [
        ModelMessage(role: .user, text: "Hello"),
        ModelMessage(role: .assistant, text: "Hi, how can I help?"),
        ModelMessage(role: .user, text: patientText),
    ],
    maxOutputTokens: 321,
    temperature: 0.25
)

/// Instant retries, so failure tests take milliseconds; the silence limits are only a net for a
/// test that would otherwise hang (a test of a timeout sets its own). They are long enough for a
/// loopback server to answer while the test process is starved: at 5 s, a stall of the whole
/// process in the first seconds of a full run (every suite starting at once on two cores) timed
/// out a loopback answer, which was then retried (a second request) or failed as unavailable.
let fastTimeouts = ModelTimeouts(response: .seconds(30), idle: .seconds(30), total: .seconds(60))
let fastRetry = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))

/// Starts `model` answering, cancels the consumer after its first delta, and checks that `server`
/// saw the HTTP connection closed promptly (the scripted answer would otherwise run 40 s more; the 30 s bound leaves a busy machine room).
func expectCancellingClosesTheConnection(_ model: any ChatModel, server: LoopbackHTTPServer) async throws {
    let firstDelta = AsyncStream<Void>.makeStream()
    let consumer = Task {
        for try await event in model.stream(sampleRequest) {
            if case .delta = event { firstDelta.continuation.yield() }
        }
    }
    var iterator = firstDelta.stream.makeAsyncIterator()
    await iterator.next()
    let cancelled = ContinuousClock.now
    consumer.cancel()
    #expect(await server.waitForClientClosures(1, timeout: .seconds(30)))
    let closed = try #require(server.clientClosures.first)
    #expect(closed - cancelled < .seconds(30))
    #expect(server.requests.count == 1)
}
