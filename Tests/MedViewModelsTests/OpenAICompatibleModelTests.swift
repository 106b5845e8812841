import Foundation
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewTestSupport
import Synchronization
import Testing

/// The OpenAI-compatible Chat Completions model against loopback stand-ins that answer the way
/// OpenAI, vLLM, Ollama and llama.cpp servers do.
@Suite(.timeLimit(.minutes(1))) struct OpenAICompatibleModelTests {
    static let key = "sk-proj-SECRET-abcdef0123456789"

    static func data(_ json: String) -> String { "data: \(json)\n\n" }
    static func chunk(content: String?, role: Bool = false, finish: String? = nil) -> String {
        var delta: [String] = []
        if role { delta.append(#""role":"assistant""#) }
        if let content {
            delta.append(#""content":"# + String(data: try! JSONEncoder().encode(content), encoding: .utf8)!)
        }
        let finishJSON = finish.map { "\"\($0)\"" } ?? "null"
        return data(#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test","choices":[{"index":0,"delta":{"# + delta.joined(separator: ",") + #"},"logprobs":null,"finish_reason":"# + finishJSON + "}]}")
    }
    static let usage = data(#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"test","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":7,"total_tokens":49}}"#)
    static let done = "data: [DONE]\n\n"
    /// OpenAI's shape: role-only first delta, an empty delta, text, finish reason, usage chunk, [DONE].
    static let answer = chunk(content: "", role: true) + chunk(content: "Rest ") + chunk(content: "") + chunk(content: "and 🍵 fluids.") + chunk(content: nil, finish: "stop") + usage + done

    func model(_ server: LoopbackHTTPServer, key: String? = nil, retry: RetryPolicy = fastRetry, timeouts: ModelTimeouts = fastTimeouts) -> OpenAICompatibleModel {
        OpenAICompatibleModel(
            configuration: .init(baseURL: server.baseURL + "/v1", model: "test-model", apiKey: key.map(APIKey.init), timeouts: timeouts, retry: retry),
            sleep: { _ in }
        )
    }

    @Test func streamsTheAnswerSkippingRoleOnlyAndEmptyDeltasFromBytesSplitAnywhere() async throws {
        for piece in [0, 1, 5, 100] {
            try await LoopbackHTTPServer.with([.events(Self.answer, piece: piece)]) { server in
                let result = await collect(model(server).stream(sampleRequest))
                #expect(result.error == nil, "piece \(piece)")
                // Deltas that arrive in one read are passed on joined: the text is what counts.
                #expect(result.deltas.joined() == "Rest and 🍵 fluids.")
                #expect(!result.deltas.contains(""))
                #expect(result.usage == Usage(inputTokens: 42, outputTokens: 7))
                #expect(result.events.last == .stop(.endTurn))
            }
        }
    }

    @Test func anAnswerWrittenAtOnceReachesTheConsumerInAFewJoinedDeltas() async throws {
        // A fast model (or a cache) writes a hundred deltas at once: they are decoded where they
        // arrive and passed on joined, one batch per read of the socket, not one wake-up each.
        let words = (0..<100).map { "word\($0) " }
        let body = Self.chunk(content: "", role: true) + words.map { Self.chunk(content: $0) }.joined() + Self.chunk(content: nil, finish: "stop") + Self.done
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: [.send(body)])]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.text == words.joined())
            #expect(result.deltas.count < 20, "\(result.deltas.count) deltas for one write")
            #expect(result.events.last == .stop(.endTurn))
        }
    }

    @Test func aDeltaIsPassedOnAsSoonAsItArrivesNotHeldForTheNext() async throws {
        // The server sends one delta and then nothing: the delta must arrive anyway (a batch is
        // closed when its read has been handled, not when more text comes or the limit runs out).
        let steps: [LoopbackHTTPServer.Step] = [.send(Self.chunk(content: "", role: true) + Self.chunk(content: "First")), .hold]
        let patient = ModelTimeouts(response: .seconds(50), idle: .seconds(50), total: .seconds(50))
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: steps)]) { server in
            var first: ModelEvent?
            for try await event in model(server, retry: .none, timeouts: patient).stream(sampleRequest) {
                first = event
                break
            }
            #expect(first == .delta("First"))
        }
    }

    @Test func sendsTheChatCompletionsRequestWithTheSystemPromptFirst() async throws {
        try await LoopbackHTTPServer.with([.events(Self.answer)]) { server in
            let model = model(server, key: Self.key)
            #expect(model.descriptor == ModelDescriptor(provider: "openai", id: "test-model", demo: false))
            _ = await collect(model.stream(sampleRequest))
            let request = try #require(server.requests.first)
            #expect(request.method == "POST")
            #expect(request.uri == "/v1/chat/completions")
            #expect(request.header("authorization") == "Bearer \(Self.key)")
            let json = try #require(request.json)
            #expect(json["model"] as? String == "test-model")
            #expect(json["max_tokens"] as? Int == 321)
            #expect(json["temperature"] as? Double == 0.25)
            #expect(json["stream"] as? Bool == true)
            #expect((json["stream_options"] as? [String: Any])?["include_usage"] as? Bool == true)
            let messages = try #require(json["messages"] as? [[String: Any]])
            #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "user"])
            #expect(messages.first?["content"] as? String == "You are a careful health companion.")
            #expect(messages.last?["content"] as? String == patientText)
        }
    }

    @Test func anyTextReachesTheServerAsValidJSONExactlyAsWritten() async throws {
        // The body is written without JSONEncoder: quotes, backslashes, every control character,
        // slashes and non-ASCII text must still arrive as valid JSON that reads back unchanged.
        var controls = ""
        for value in UInt8(0)..<0x20 { controls.unicodeScalars.append(Unicode.Scalar(value)) }
        let awkward = #"She said "it's \ fine" / 2 tablets"# + "\n\t\r" + controls + "\u{7F} é 😷 \u{2028}"
        let request = ModelRequest(
            system: "Line one\nLine \"two\" \\ three",
            messages: [ModelMessage(role: .user, text: awkward), ModelMessage(role: .assistant, text: ""), ModelMessage(role: .user, text: patientText)],
            maxOutputTokens: 0,
            temperature: nil
        )
        try await LoopbackHTTPServer.with([.events(Self.answer)]) { server in
            _ = await collect(model(server).stream(request))
            let json = try #require(server.requests.first?.json)
            #expect(json["model"] as? String == "test-model")
            #expect(json["max_tokens"] as? Int == 1)
            #expect(json.keys.contains("temperature") == false)
            #expect(json["stream"] as? Bool == true)
            let messages = try #require(json["messages"] as? [[String: Any]])
            #expect(messages.map { $0["role"] as? String } == ["system", "user", "assistant", "user"])
            #expect(messages.map { $0["content"] as? String } == [request.system, awkward, "", patientText])
        }
    }

    @Test func sendsNoAuthorizationHeaderWithoutAKey() async throws {
        try await LoopbackHTTPServer.with([.events(Self.answer)]) { server in
            _ = await collect(model(server).stream(sampleRequest))
            #expect(server.requests.first?.header("authorization") == nil)
        }
    }

    @Test func acceptsServersThatOmitUsageOrPutItInTheLastChoiceChunk() async throws {
        // llama.cpp / Ollama style: no separate usage chunk; and a server with no usage at all.
        let withUsageInLast = Self.chunk(content: "Hi") + Self.data(#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#) + Self.done
        let withoutUsage = Self.chunk(content: "Hi") + Self.chunk(content: nil, finish: "stop") + Self.done
        try await LoopbackHTTPServer.with([.events(withUsageInLast), .events(withoutUsage)]) { server in
            let first = await collect(model(server).stream(sampleRequest))
            #expect(first.error == nil)
            #expect(first.usage == Usage(inputTokens: 3, outputTokens: 1))
            let second = await collect(model(server).stream(sampleRequest))
            #expect(second.error == nil)
            #expect(second.text == "Hi")
            #expect(second.usage == nil)
            #expect(second.stop == .endTurn)
        }
    }

    @Test func mapsFinishReasons() async throws {
        let cases: [(String, ModelStopReason)] = [("length", .maxTokens), ("content_filter", .contentFiltered), ("stop", .endTurn)]
        for (raw, expected) in cases {
            try await LoopbackHTTPServer.with([.events(Self.chunk(content: "x") + Self.chunk(content: nil, finish: raw) + Self.done)]) { server in
                #expect(await collect(model(server).stream(sampleRequest)).stop == expected, "\(raw)")
            }
        }
    }

    @Test func aFinishReasonWithoutDoneCompletesButNeitherIsATruncatedStream() async throws {
        try await LoopbackHTTPServer.with([.events(Self.chunk(content: "All") + Self.chunk(content: nil, finish: "stop"))]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.stop == .endTurn)
        }
        for reply in [LoopbackHTTPServer.Reply.events(Self.chunk(content: "Hal")), LoopbackHTTPServer.Reply(steps: [.send(Self.chunk(content: "Hal")), .cut])] {
            try await LoopbackHTTPServer.with([reply]) { server in
                let result = await collect(model(server).stream(sampleRequest))
                #expect(result.text == "Hal")
                #expect(result.stop == nil)
                let error = try #require(result.modelError)
                #expect(error.retryable)
                #expect(server.requests.count == 1)
            }
        }
    }

    @Test func anErrorObjectInsideTheStreamIsATypedError() async throws {
        // OpenAI / Ollama nest it; vLLM sends a top-level error object.
        let nested = Self.chunk(content: "Part") + Self.data(#"{"error":{"message":"The server had an error while processing your request about \#(patientText)","type":"server_error","param":null,"code":null}}"#)
        let vllm = Self.chunk(content: "Part") + Self.data(#"{"object":"error","message":"rate limited","type":"RateLimitError","param":null,"code":429}"#)
        try await LoopbackHTTPServer.with([.events(nested), .events(vllm)]) { server in
            let first = await collect(model(server).stream(sampleRequest))
            #expect(first.text == "Part")
            let error = try #require(first.modelError)
            #expect(error.kind == .unavailable)
            #expect(error.retryable)
            #expect(error.detail.contains("server_error"))
            #expect(!error.detail.contains("warfarin"))
            let second = await collect(model(server).stream(sampleRequest))
            #expect(second.modelError?.kind == .throttled)
            #expect(server.requests.count == 2)
        }
    }

    @Test func aRateLimitedRequestSucceedsAfterRetryButExhaustedQuotaIsNotRetried() async throws {
        let limited = LoopbackHTTPServer.Reply.error(429, #"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#, headers: [("x-request-id", "req_abc123")])
        try await LoopbackHTTPServer.with([limited, .events(Self.answer)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.text == "Rest and 🍵 fluids.")
            #expect(server.requests.count == 2)
        }
        let quota = LoopbackHTTPServer.Reply.error(429, #"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#)
        try await LoopbackHTTPServer.with([quota, .events(Self.answer)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            let error = try #require(result.modelError)
            #expect(error.kind == .failed)
            #expect(!error.retryable)
            #expect(server.requests.count == 1)
        }
    }

    /// A prepared call's first attempt is the held request; a retry is a new request.
    @Test("a prepared call whose request the provider refuses with a retryable error is retried as a new request")
    func aPreparedCallIsRetried() async throws {
        let busy = LoopbackHTTPServer.Reply.error(503, #"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#)
        try await LoopbackHTTPServer.with([busy, .events(Self.answer)]) { server in
            let call = try #require(await model(server).prepare(sampleRequest))
            call.send()
            let text = Mutex("")
            try await call.answer { event in
                if case .delta(let piece) = event { text.withLock { $0 += piece } }
                return true
            }
            #expect(text.withLock { $0 } == "Rest and 🍵 fluids.")
            #expect(server.requests.count == 2)
        }
    }

    @Test func httpErrorsMapToTypedErrors() async throws {
        let cases: [(LoopbackHTTPServer.Reply, ModelError.Kind, Bool, Int)] = [
            // Ollama: unknown model.
            (.error(404, #"{"error":{"message":"model \"nope\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#), .invalidRequest, false, 1),
            // vLLM: top-level error object.
            (.error(400, #"{"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}"#), .invalidRequest, false, 1),
            (.error(401, #"{"error":{"message":"Incorrect API key provided: \#(Self.key)","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#), .failed, false, 1),
            // llama.cpp busy, and a proxy's non-JSON 502: retried to the limit.
            (.error(503, #"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#), .unavailable, true, 3),
            (LoopbackHTTPServer.Reply(status: 502, headers: [("content-type", "text/html")], steps: [.send("<html>Bad gateway</html>")]), .unavailable, true, 3),
        ]
        for (reply, kind, retryable, attempts) in cases {
            try await LoopbackHTTPServer.with([reply]) { server in
                let result = await collect(model(server, key: Self.key).stream(sampleRequest))
                let error = try #require(result.modelError)
                #expect(error.kind == kind, "\(error.detail)")
                #expect(error.retryable == retryable, "\(error.detail)")
                #expect(server.requests.count == attempts, "\(error.detail)")
                #expect(!error.detail.contains(Self.key))
            }
        }
    }

    @Test func aServerThatAnswersJSONInsteadOfAStreamIsAFailure() async throws {
        let plain = LoopbackHTTPServer.Reply.error(200, #"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#)
        try await LoopbackHTTPServer.with([plain]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            let error = try #require(result.modelError)
            #expect(error.kind == .failed)
            #expect(!error.retryable)
        }
    }

    @Test func aMalformedChunkIsATypedFailure() async throws {
        try await LoopbackHTTPServer.with([.events(Self.chunk(content: "Hi") + "data: {\"choices\":[{\"delta\":\n\n" + Self.done)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            #expect(result.text == "Hi")
            let error = try #require(result.modelError)
            #expect(error.kind == .failed)
            #expect(error.detail.contains("malformed"))
        }
    }

    @Test func anOversizeLineIsATypedFailureNotUnboundedMemory() async throws {
        let huge = "data: " + String(repeating: "x", count: (1 << 20) + 10) + "\n\n"
        try await LoopbackHTTPServer.with([.events(Self.chunk(content: "Hi") + huge, piece: 64 * 1024)]) { server in
            let result = await collect(model(server).stream(sampleRequest))
            let error = try #require(result.modelError)
            #expect(error.kind == .failed)
            #expect(error.detail.contains("lineTooLong"))
        }
    }

    @Test func aSlowLocalServerTimesOutBetweenChunksAndTheConnectionIsClosed() async throws {
        let timeouts = ModelTimeouts(response: .seconds(5), idle: .milliseconds(500), total: .seconds(30))
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: [.send(Self.chunk(content: "", role: true)), .hold]), .events(Self.answer)]) { server in
            // No text had been sent yet, so the timeout is retried and the second attempt succeeds.
            let result = await collect(model(server, timeouts: timeouts).stream(sampleRequest))
            #expect(result.error == nil)
            #expect(result.text == "Rest and 🍵 fluids.")
            #expect(server.requests.count == 2)
            #expect(await server.waitForClientClosures(1))
        }
    }

    @Test func cancellingTheConsumerClosesTheConnectionPromptly() async throws {
        var steps: [LoopbackHTTPServer.Step] = [.send(Self.chunk(content: "First"))]
        for _ in 0..<400 { steps += [.pause(.milliseconds(100)), .send(Self.chunk(content: " more"))] }
        try await LoopbackHTTPServer.with([LoopbackHTTPServer.Reply(steps: steps)]) { server in
            try await expectCancellingClosesTheConnection(model(server), server: server)
        }
    }
}
