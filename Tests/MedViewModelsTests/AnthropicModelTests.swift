import Synchronization
import Foundation
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewTestSupport
import Testing

/// The Anthropic Messages API model against a loopback stand-in that answers like the real API.
@Suite(.timeLimit(.minutes(1))) struct AnthropicModelTests {
    static let key = "sk-ant-test-SECRET-0123456789"

    static func sse(_ type: String, _ json: String) -> String { "event: \(type)\ndata: \(json)\n\n" }
    static func delta(_ text: String) -> String {
        let escaped = String(data: try! JSONEncoder().encode(text), encoding: .utf8)!
        return sse("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"# + escaped + "}}")
    }
    static let start = sse("message_start", #"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-test","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}"#)
    static let blockStart = sse("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#)
    static let ping = sse("ping", #"{"type": "ping"}"#)
    static func end(_ reason: String = "end_turn", output: Int = 15) -> String {
        sse("content_block_stop", #"{"type":"content_block_stop","index":0}"#)
            + sse("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"\#(reason)","stop_sequence":null},"usage":{"output_tokens":\#(output)}}"#)
            + sse("message_stop", #"{"type":"message_stop"}"#)
    }
    static let answer = start + blockStart + ping + delta("Drink ") + delta("water 💧") + delta(" often.") + end()

    func model(_ server: LoopbackHTTPServer, retry: RetryPolicy = fastRetry, timeouts: ModelTimeouts = fastTimeouts) -> AnthropicModel {
        AnthropicModel(
            configuration: .init(model: "claude-test", apiKey: APIKey(Self.key), baseURL: server.baseURL, timeouts: timeouts, retry: retry),
            sleep: { _ in }
        )
    }

    @Test func streamsTheAnswerWithUsageAndStopFromBytesSplitAnywhere() async throws {
        for piece in [0, 1, 7, 64] {
            try await LoopbackHTTPServer.with([.events(Self.answer, piece: piece)]) { server in
                let result = await collect(model(server).stream(sampleRequest))
                #expect(result.error == nil, "piece \(piece)")
                // Deltas that arrive in one read are passed on joined: the text is what counts.
                #expect(result.deltas.joined() == "Drink water 💧 often.")
                #expect(!result.deltas.contains(""))
                #expect(result.usage == Usage(inputTokens: 30, outputTokens: 15))
                #expect(result.events.last == .stop(.endTurn))
            }
        }
    }

    @Test func sendsTheMessagesRequestTheAPIExpects() async throws {
        try await LoopbackHTTPServer.with([.events(Self.answer)]) { server in
            let model = model(server)
            #expect(model.descriptor == ModelDescriptor(provider: "anthropic", id: "claude-test", demo: false))
            _ = await collect(model.stream(sampleRequest))
            let request = try #require(server.requests.first)
            #expect(request.method == "POST")
            #expect(request.uri == "/v1/messages")
            #expect(request.header("x-api-key") == Self.key)
            #expect(request.header("anthropic-version") == "2023-06-01")
            #expect(request.header("content-type") == "application/json")
            let json = try #require(request.json)
            #expect(json["model"] as? String == "claude-test")
            #expect(json["system"] as? String == "You are a careful health companion.")
            #expect(json["max_tokens"] as? Int == 321)
            #expect(json["temperature"] as? Double == 0.25)
            #expect(json["stream"] as? Bool == true)
            let messages = try #require(json["messages"] as? [[String: Any]])
            #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user"])
            #expect(messages.last?["content"] as? String == patientText)
        }
    }

    @Test func omitsTemperatureWhenTheRequestHasNone() async throws {
        try await LoopbackHTTPServer.with([.events(Self.answer)]) { server in
            var request = sampleRequest
            request.temperature = nil
            _ = await collect(model(server).stream(request))
            let json = try #require(server.requests.first?.json)
            #expect(json["temperature"] == nil)
        }
    }

    @Test func mapsStopReasons() async throws {
        let cases: [(String, ModelStopReason)] = [("max_tokens", .maxTokens), ("stop_sequence", .stopSequence), ("refusal", .contentFiltered), ("end_turn", .endTurn)]
        for (raw, expected) in cases {
            try await LoopbackHTTPServer.with([.events(Self.start + Self.delta("x") + Self.end(raw))]) { server in
                let result = await collect(model(server).stream(sampleRequest))
                #expect(result.stop == expected, "\(raw)")
            }
        }
    }

    @Test func aRateLimitedRequestSucceedsAfterRetry() async throws {
        let limited = LoopbackHTTPServer.Reply.error(429, #"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#, headers: [("retry-after", "1")])
        try await LoopbackHTTPServer.with([limited, .events(Self.answer)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.text == "Drink water 💧 often.")
            #expect(server.requests.count == 2)
        }
    }

    @Test func theRetryAfterOfARateLimitIsWaitedAndAnAskTooLongIsReportedAtOnce() async throws {
        let waits = Mutex<[Duration]>([])
        func recording(_ server: LoopbackHTTPServer) -> AnthropicModel {
            AnthropicModel(
                configuration: .init(model: "claude-test", apiKey: APIKey(Self.key), baseURL: server.baseURL, timeouts: fastTimeouts, retry: fastRetry),
                sleep: { d in waits.withLock { $0.append(d) } }
            )
        }
        let limited = LoopbackHTTPServer.Reply.error(429, #"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#, headers: [("retry-after", "2")])
        try await LoopbackHTTPServer.with([limited, .events(Self.answer)]) { server in
            let result = await collect(recording(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(server.requests.count == 2)
            #expect(waits.withLock { $0 } == [.seconds(2)])
        }
        let minutes = LoopbackHTTPServer.Reply.error(429, #"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#, headers: [("retry-after", "600")])
        try await LoopbackHTTPServer.with([minutes, .events(Self.answer)]) { server in
            let result = await collect(recording(server).stream(sampleRequest))
            let error = try #require(result.modelError)
            #expect(error.kind == .throttled && error.retryAfter == .seconds(600))
            #expect(server.requests.count == 1)
        }
    }

    @Test func overloadedAndServerErrorsAreRetriedThenReportedAsUnavailable() async throws {
        let overloaded = LoopbackHTTPServer.Reply.error(529, #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, headers: [("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")])
        try await LoopbackHTTPServer.with([overloaded]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.events.isEmpty)
            let error = try #require(result.modelError)
            #expect(error.kind == .unavailable)
            #expect(error.retryable)
            #expect(error.detail.contains("529") && error.detail.contains("overloaded_error") && error.detail.contains("req_011CSHoEeqs5C35K2UUqR7Fy"))
            #expect(server.requests.count == 3)
        }
        try await LoopbackHTTPServer.with([.error(500, #"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#), .events(Self.answer)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(server.requests.count == 2)
        }
    }

    @Test func authenticationFailuresAreNotRetriedAndNeverShowTheKey() async throws {
        for status in [401, 403] {
            let type = status == 401 ? "authentication_error" : "permission_error"
            try await LoopbackHTTPServer.with([.error(status, #"{"type":"error","error":{"type":"\#(type)","message":"invalid x-api-key \#(Self.key)"}}"#)]) { server in
                let result = await collect(model(server).stream(sampleRequest))
                let error = try #require(result.modelError)
                #expect(error.kind == .failed)
                #expect(!error.retryable)
                #expect(error.detail.contains("authentication"))
                #expect(!error.detail.contains(Self.key))
                #expect(!"\(model(server).configuration)".contains(Self.key))
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test func anInvalidRequestIsNotRetriedAndItsMessageIsNotCopied() async throws {
        // The API's message may quote the request; the detail must not carry patient text.
        let body = #"{"type":"error","error":{"type":"invalid_request_error","message":"messages.2.content: \#(patientText) is too long"}}"#
        try await LoopbackHTTPServer.with([.error(400, body)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            let error = try #require(result.modelError)
            #expect(error.kind == .invalidRequest)
            #expect(!error.retryable)
            #expect(error.detail.contains("invalid_request_error"))
            #expect(!error.detail.contains("warfarin"))
            #expect(server.requests.count == 1)
        }
    }

    @Test func anErrorEventMidStreamEndsTheAnswerWithAPartialTextAndARetryableErrorWithoutRetrying() async throws {
        let body = Self.start + Self.delta("Partial ") + Self.sse("error", #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        try await LoopbackHTTPServer.with([.events(body), .events(Self.answer)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.text == "Partial ")
            let error = try #require(result.modelError)
            #expect(error.kind == .unavailable)
            #expect(error.retryable)
            #expect(server.requests.count == 1)
        }
    }

    @Test func anErrorEventBeforeTheFirstDeltaIsRetried() async throws {
        let body = Self.start + Self.sse("error", #"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#)
        try await LoopbackHTTPServer.with([.events(body), .events(Self.answer)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.text == "Drink water 💧 often.")
            #expect(server.requests.count == 2)
        }
    }

    @Test func aMalformedEventIsATypedFailure() async throws {
        let body = Self.start + Self.delta("Hi") + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\n\n"
        try await LoopbackHTTPServer.with([.events(body)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.text == "Hi")
            let error = try #require(result.modelError)
            #expect(error.kind == .failed)
            #expect(!error.retryable)
            #expect(error.detail.contains("malformed"))
        }
    }

    @Test func aStreamThatEndsWithoutAStopIsAnErrorNotACompleteAnswer() async throws {
        // Once as a clean end of body, once as a connection cut in the middle of the chunked body.
        for reply in [LoopbackHTTPServer.Reply.events(Self.start + Self.delta("Half an ans")), LoopbackHTTPServer.Reply(steps: [.send(Self.start + Self.delta("Half an ans")), .cut])] {
            try await LoopbackHTTPServer.with([reply]) { server in
                let result = await collect(model(server).stream(sampleRequest))
                #expect(result.text == "Half an ans")
                #expect(result.stop == nil)
                let error = try #require(result.modelError)
                #expect(error.retryable)
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test func aSilentServerTimesOutAndItsConnectionIsClosed() async throws {
        let timeouts = ModelTimeouts(response: .seconds(60), idle: .milliseconds(500), total: .seconds(120))
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: [.send(Self.start + Self.delta("Hel")), .hold])]) { server in
            let started = ContinuousClock.now
            let result = await collect(model(server, retry: .none, timeouts: timeouts).stream(sampleRequest))
            let elapsed = ContinuousClock.now - started
            #expect(result.text == "Hel")
            let error = try #require(result.modelError)
            #expect(error.kind == .unavailable)
            #expect(error.retryable)
            #expect(error.detail.contains("silent"))
            #expect(elapsed < .seconds(30))  // the 500 ms idle limit, not the 60 s response limit, ended it
            #expect(await server.waitForClientClosures(1))
        }
    }

    @Test func aServerThatNeverAnswersTimesOutAndIsRetried() async throws {
        // 3 s: the retry's own answer must arrive within it even on a loaded machine.
        let timeouts = ModelTimeouts(response: .seconds(3), idle: .seconds(5), total: .seconds(30))
        let slow = LoopbackHTTPServer.Reply(delayBeforeHead: .seconds(20), steps: [.send(Self.answer)])
        try await LoopbackHTTPServer.with([slow, .events(Self.answer)]) { server in
            let result = await collect(model(server, timeouts: timeouts).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.text == "Drink water 💧 often.")
            #expect(server.requests.count == 2)
            #expect(await server.waitForClientClosures(1))
        }
    }

    @Test func cancellingTheConsumerClosesTheConnectionPromptly() async throws {
        var steps: [LoopbackHTTPServer.Step] = [.send(Self.start + Self.delta("First"))]
        for _ in 0..<400 { steps += [.pause(.milliseconds(100)), .send(Self.delta(" more"))] }
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: steps)]) { server in
            try await expectCancellingClosesTheConnection(model(server), server: server)
        }
    }

    @Test func anUnreachableServerIsAnUnavailableRetryableError() async throws {
        // A port kept bound with nothing listening (another test's server cannot take it meanwhile).
        let timeouts = ModelTimeouts(response: .milliseconds(500), idle: .seconds(5), total: .seconds(30))
        let result = await withRefusingLoopbackPort { port in
            let model = AnthropicModel(configuration: .init(model: "m", apiKey: APIKey("k"), baseURL: "http://127.0.0.1:\(port)", timeouts: timeouts, retry: .none))
            return await collect(model.stream(sampleRequest))
        }
        let error = try #require(result.modelError)
        #expect(error.kind == .unavailable)
        #expect(error.retryable)
    }
}
