import Foundation
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewStandIns
import MedViewTestSupport
import Testing

/// `ChatModel.reply`: a short answer (the safety triage's one word) asked for unstreamed and read
/// whole, from every HTTP provider, with the same retries and typed errors as a stream.
@Suite(.timeLimit(.minutes(1))) struct WholeReplyTests {
    static let triage = ModelRequest(system: "Answer with one word.", messages: [ModelMessage(role: .user, text: patientText)], maxOutputTokens: 4, temperature: 0)

    static func json(_ body: String, status: Int = 200) -> LoopbackHTTPServer.Reply {
        LoopbackHTTPServer.Reply(status: status, headers: [("content-type", "application/json")], steps: [.send(body)])
    }

    static let completion = #"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"test","choices":[{"index":0,"message":{"role":"assistant","content":"cardiac"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":1,"total_tokens":31}}"#

    func openAI(_ server: LoopbackHTTPServer, retry: RetryPolicy = fastRetry) -> OpenAICompatibleModel {
        OpenAICompatibleModel(configuration: .init(baseURL: server.baseURL + "/v1", model: "test-model", apiKey: APIKey("sk-test"), timeouts: fastTimeouts, retry: retry), sleep: { _ in })
    }

    func anthropic(_ server: LoopbackHTTPServer) -> AnthropicModel {
        AnthropicModel(configuration: .init(model: "claude-test", apiKey: APIKey("sk-ant-test"), baseURL: server.baseURL, timeouts: fastTimeouts, retry: fastRetry), sleep: { _ in })
    }

    @Test func openAIAsksForOneUnstreamedCompletionAndReadsItsText() async throws {
        try await LoopbackHTTPServer.with([Self.json(Self.completion)]) { server in
            let reply = try await openAI(server).reply(Self.triage)
            #expect(reply == "cardiac")
            let request = try #require(server.requests.first)
            #expect(request.uri == "/v1/chat/completions")
            #expect(request.header("accept") == "application/json")
            #expect(request.header("authorization") == "Bearer sk-test")
            let json = try #require(request.json)
            #expect(json["stream"] as? Bool == false)
            #expect(json["stream_options"] == nil)
            #expect(json["max_tokens"] as? Int == 4)
            #expect(json["temperature"] as? Double == 0)
            let messages = try #require(json["messages"] as? [[String: Any]])
            #expect(messages.map { $0["role"] as? String } == ["system", "user"])
            #expect(messages.last?["content"] as? String == patientText)
        }
    }

    @Test func aThrottledReplyIsRetriedLikeAStream() async throws {
        let throttled = LoopbackHTTPServer.Reply.error(429, #"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#)
        try await LoopbackHTTPServer.with([throttled, Self.json(Self.completion)]) { server in
            let reply = try await openAI(server).reply(Self.triage)
            #expect(reply == "cardiac")
            #expect(server.requests.count == 2)
        }
    }

    @Test func badRepliesAreTypedErrorsWithoutTheirText() async throws {
        let cases: [(LoopbackHTTPServer.Reply, ModelError.Kind)] = [
            // An error object in a 200 answer (vLLM's shape).
            (Self.json(#"{"object":"error","message":"\#(patientText)","type":"BadRequestError","code":400}"#), .invalidRequest),
            // Not JSON at all, though it says so.
            (Self.json("{\"choices\": [\(patientText)"), .failed),
            // No choice to read.
            (Self.json(#"{"object":"chat.completion","choices":[]}"#), .failed),
            // A server that streamed anyway: no JSON reply.
            (LoopbackHTTPServer.Reply.events("data: {}\n\n"), .failed),
        ]
        for (reply, kind) in cases {
            try await LoopbackHTTPServer.with([reply]) { server in
                do {
                    let text = try await openAI(server, retry: .none).reply(Self.triage)
                    Issue.record("expected \(kind), got a reply of \(text.count) characters")
                } catch let error as ModelError {
                    #expect(error.kind == kind, "\(error)")
                    #expect(!error.detail.contains("Jane"))
                }
            }
        }
    }

    @Test func aReplyLongerThanAnyWordIsRefusedNotHeld() async throws {
        // A reply is a few tokens: a server that sends megabytes is cut off with a typed error.
        let huge = #"{"choices":[{"index":0,"message":{"content":""# + String(repeating: "a", count: 1_100_000) + #""}}]}"#
        _ = try await LoopbackHTTPServer.with([Self.json(huge)]) { server in
            await #expect(throws: ModelError.self) { try await openAI(server, retry: .none).reply(Self.triage) }
        }
    }

    @Test func anthropicAsksForOneUnstreamedMessageAndJoinsItsTextBlocks() async throws {
        let message = #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[{"type":"thinking","thinking":"hidden"},{"type":"text","text":"over"},{"type":"text","text":"dose"}],"stop_reason":"end_turn","usage":{"input_tokens":20,"output_tokens":2}}"#
        try await LoopbackHTTPServer.with([Self.json(message)]) { server in
            let reply = try await anthropic(server).reply(Self.triage)
            #expect(reply == "overdose")
            let request = try #require(server.requests.first)
            #expect(request.uri == "/v1/messages")
            #expect(request.header("x-api-key") == "sk-ant-test")
            let json = try #require(request.json)
            #expect(json["stream"] as? Bool == false)
            #expect(json["system"] as? String == "Answer with one word.")
        }
        let overloaded = #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        try await LoopbackHTTPServer.with([Self.json(overloaded)]) { server in
            do {
                _ = try await AnthropicModel(configuration: .init(model: "claude-test", apiKey: APIKey("k"), baseURL: server.baseURL, timeouts: fastTimeouts, retry: .none)).reply(Self.triage)
                Issue.record("an error object was read as a reply")
            } catch let error as ModelError {
                #expect(error.retryable)
            }
        }
    }

    @Test(arguments: [BedrockConfiguration.API.converse, .invoke])
    func bedrockCallsTheUnstreamedOperationSignedAndRetried(api: BedrockConfiguration.API) async throws {
        try await BedrockStandIn.withRunning { standIn in
            let model = bedrockModel(standIn.endpoint, api: api, guardrail: .init(identifier: "gr-1", version: "2"))
            // Through SigV4 to `/converse` or `/invoke`, with a throttled first attempt retried.
            let reply = try await model.reply(ModelRequest(system: "one word", messages: [ModelMessage(role: .user, text: "[[say:none]] [[throttle:1]]")], maxOutputTokens: 4, temperature: 0))
            #expect(reply == "none")
            #expect(standIn.statistics.requests == 2)
            await #expect(throws: ModelError.self) {
                try await model.reply(ModelRequest(system: "one word", messages: [ModelMessage(role: .user, text: "[[exception:validationException]]")], maxOutputTokens: 4, temperature: 0))
            }
        }
    }

    @Test func bedrockConverseBodyLeavesOutTheStreamOnlyGuardrailMode() throws {
        let model = bedrockModel("http://127.0.0.1:1", bearer: "k", guardrail: .init(identifier: "gr-1", version: "DRAFT"))
        for (streaming, mode) in [(true, "sync"), (false, nil) as (Bool, String?)] {
            let body = try #require(try JSONSerialization.jsonObject(with: Data(model.requestBody(Self.triage, streaming: streaming))) as? [String: Any])
            let guardrail = try #require(body["guardrailConfig"] as? [String: String])
            #expect(guardrail["guardrailIdentifier"] == "gr-1")
            #expect(guardrail["streamProcessingMode"] == mode)
        }
        #expect(model.configuration.path(streaming: false) == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse")
        #expect(bedrockModel("http://127.0.0.1:1", api: .invoke, bearer: "k").configuration.path(streaming: false) == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke")
    }

    @Test func aModelWithoutItsOwnReplyJoinsItsStream() async throws {
        // The default (the scripted and local models): the stream read to its end.
        let model = ScriptedModel(configuration: .init(deltaDelay: .zero, scalarsPerDelta: 3, reply: "one two three"))
        let reply = try await model.reply(Self.triage)
        #expect(reply == "one two three")
    }
}
