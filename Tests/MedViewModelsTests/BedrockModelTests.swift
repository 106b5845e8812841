import AsyncHTTPClient
import Foundation
import MedViewAWS
import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewStandIns
import NIOCore
import NIOHTTP1
import Testing

let haiku = "anthropic.claude-3-5-haiku-20241022-v1:0"

func bedrockModel(
    _ endpoint: String, api: BedrockConfiguration.API = .converse, modelID: String = haiku,
    credentials: SigV4Credentials = BedrockStandIn.testCredentials, bearer: String? = nil,
    timeout: Duration = .seconds(10), attempts: Int = 3, guardrail: BedrockConfiguration.Guardrail? = nil
) -> BedrockModel {
    let environment = ["AWS_ACCESS_KEY_ID": credentials.accessKeyID, "AWS_SECRET_ACCESS_KEY": credentials.secretAccessKey]
    let auth: BedrockConfiguration.Authentication = bearer.map { .bearer($0) }
        ?? .sigV4(AWSCachedCredentials(AWSCredentialChain.standard(environment: environment)))
    let configuration = BedrockConfiguration(
        modelID: modelID, api: api, region: "us-east-1", endpoint: endpoint, authentication: auth, topP: 0.9, guardrail: guardrail,
        requestTimeout: timeout, retryPolicy: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))
    )
    return BedrockModel(configuration: configuration)
}

func ask(_ text: String, system: String = "You are a careful health companion.") -> ModelRequest {
    ModelRequest(system: system, messages: [
        ModelMessage(role: .user, text: "earlier question"), ModelMessage(role: .assistant, text: "earlier answer"),
        ModelMessage(role: .user, text: text),
    ], maxOutputTokens: 512, temperature: 0.2)
}

@Suite(.timeLimit(.minutes(1))) struct BedrockModelStandInTests {
    @Test(arguments: [BedrockConfiguration.API.converse, .invoke])
    func streamsTheWholeAnswerWithUsageAndStopReason(api: BedrockConfiguration.API) async throws {
        try await BedrockStandIn.withRunning { standIn in
            let result = await collect(bedrockModel(standIn.endpoint, api: api).stream(ask("How do I sleep better?")))
            #expect(result.error == nil)
            #expect(result.text == StandInScript.defaultText)
            #expect(result.stop == .endTurn)
            // The stand-in counts one output token per delta it sent (deltas that arrive in one
            // read reach the caller joined).
            #expect(result.usage?.outputTokens == StandInScript(message: "").deltas.count)
            #expect((result.usage?.inputTokens ?? 0) > 0)
            #expect(standIn.statistics.streamsCompleted == 1)
        }
    }

    @Test func modelIDsWithColonsAndARNsAreSignedWithTheDoubleEncodedPath() async throws {
        try await BedrockStandIn.withRunning { standIn in
            for id in [haiku, "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"] {
                let result = await collect(bedrockModel(standIn.endpoint, modelID: id).stream(ask("[[say:ok]]")))
                #expect(result.error == nil, "\(id)")
                #expect(result.text == "ok")
            }
        }
    }

    @Test func stopReasonAndGuardrailAreMapped() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let model = bedrockModel(standIn.endpoint, guardrail: .init(identifier: "gr-1", version: "2"))
            #expect(await collect(model.stream(ask("[[stop:max_tokens]]"))).stop == .maxTokens)
            #expect(await collect(model.stream(ask("[[stop:guardrail_intervened]]"))).stop == .contentFiltered)
        }
    }

    @Test func aWrongSecretIsRefusedAsAnInvalidSignatureAndNotRetried() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let wrong = SigV4Credentials(accessKeyID: BedrockStandIn.testCredentials.accessKeyID, secretAccessKey: "not-the-secret")
            let result = await collect(bedrockModel(standIn.endpoint, credentials: wrong).stream(ask("hello")))
            #expect(result.modelError == ModelError(kind: .failed, retryable: false, detail: "bedrock HTTP 403 InvalidSignatureException"))
            #expect(standIn.statistics.requests == 0)
            let unknown = SigV4Credentials(accessKeyID: "AKIDUNKNOWN", secretAccessKey: "x")
            #expect(await collect(bedrockModel(standIn.endpoint, credentials: unknown).stream(ask("hello"))).modelError?.detail == "bedrock HTTP 403 UnrecognizedClientException")
        }
    }

    @Test func bearerAPIKeyIsAcceptedAndAWrongOneRefused() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let ok = await collect(bedrockModel(standIn.endpoint, bearer: BedrockStandIn.testBearerToken).stream(ask("[[say:hi there]]")))
            #expect(ok.text == "hi there")
            let bad = await collect(bedrockModel(standIn.endpoint, bearer: "wrong").stream(ask("hello")))
            #expect(bad.modelError?.detail == "bedrock HTTP 403 UnrecognizedClientException")
        }
    }

    @Test func throttlingBeforeTheStreamIsRetriedUntilItSucceeds() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let result = await collect(bedrockModel(standIn.endpoint, attempts: 3).stream(ask("[[throttle:2]][[say:after retry]]")))
            #expect(result.error == nil)
            #expect(result.text == "after retry")
            let exhausted = await collect(bedrockModel(standIn.endpoint, attempts: 3).stream(ask("[[throttle:5]]")))
            #expect(exhausted.modelError == ModelError(kind: .throttled, retryable: true, detail: "bedrock HTTP 429 ThrottlingException"))
        }
    }

    @Test func throttlingInsideTheStreamIsRetriedToo() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let result = await collect(bedrockModel(standIn.endpoint, attempts: 2).stream(ask("[[stream-throttle:1]][[say:second try]]")))
            #expect(result.error == nil)
            #expect(result.text == "second try")
        }
    }

    @Test func modelStreamErrorAfterDeltasEndsTheStreamRetryableWithoutARetry() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let result = await collect(bedrockModel(standIn.endpoint).stream(ask("[[fail-after:3]][[delta:4]][[say:abcdefghijklmnop]]")))
            #expect(result.text == "abcdefghijkl")
            #expect(result.modelError == ModelError(kind: .failed, retryable: true, detail: "bedrock stream exception modelStreamErrorException"))
            #expect(standIn.statistics.requests == 1)
        }
    }

    @Test func exceptionsAndHTTPErrorsGetTheirKind() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let model = bedrockModel(standIn.endpoint, attempts: 1)
            let cases: [(String, ModelError)] = [
                ("[[exception:validationException]]", ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock stream exception validationException")),
                ("[[exception:serviceUnavailableException]]", ModelError(kind: .unavailable, retryable: true, detail: "bedrock stream exception serviceUnavailableException")),
                ("[[exception:internalServerException]]", ModelError(kind: .unavailable, retryable: true, detail: "bedrock stream exception internalServerException")),
                ("[[http:400:ValidationException]]", ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock HTTP 400 ValidationException")),
                ("[[http:503:ServiceUnavailableException]]", ModelError(kind: .unavailable, retryable: true, detail: "bedrock HTTP 503 ServiceUnavailableException")),
                ("[[http:403:AccessDeniedException]]", ModelError(kind: .failed, retryable: false, detail: "bedrock HTTP 403 AccessDeniedException")),
            ]
            for (message, expected) in cases {
                #expect(await collect(model.stream(ask(message))).modelError == expected, "\(message)")
            }
        }
    }

    @Test func aSilentServiceTimesOutAsRetryable() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let start = ContinuousClock.now
            let result = await collect(bedrockModel(standIn.endpoint, timeout: .milliseconds(300), attempts: 1).stream(ask("[[delay:10000]]")))
            #expect(result.modelError?.kind == .unavailable)
            #expect(result.modelError?.retryable == true)
            #expect(result.modelError?.detail.contains("timed out") == true)
            // Ended by the 300 ms limit, well before the service's answer after 10 s.
            #expect(ContinuousClock.now - start < .seconds(8))
        }
    }

    @Test func cancellingTheConsumerClosesTheHTTPRequest() async throws {
        try await BedrockStandIn.withRunning { standIn in
            let model = bedrockModel(standIn.endpoint)
            let stream = model.stream(ask("[[delay:30]][[delta:1]][[repeat:20]]"))
            // The consumer's task is cancelled after the first delta, as ChatService cancels a stopped answer.
            let consumer = Task {
                var deltas = 0
                do {
                    for try await event in stream {
                        if case .delta = event {
                            deltas += 1
                            withUnsafeCurrentTask { $0?.cancel() }
                        }
                    }
                } catch {}
                return deltas
            }
            let deltas = await consumer.value
            #expect(deltas < 5)
            var waited = 0
            while standIn.statistics.streamsAborted == 0, waited < 100 {
                try await Task.sleep(for: .milliseconds(50))
                waited += 1
            }
            #expect(standIn.statistics.streamsAborted == 1)
            #expect(standIn.statistics.streamsCompleted == 0)
        }
    }
}

@Suite struct BedrockMappingTests {
    @Test func converseBodyCarriesSystemMessagesInferenceAndGuardrail() async throws {
        let model = bedrockModel("http://127.0.0.1:1", bearer: "k", guardrail: .init(identifier: "gr-1", version: "DRAFT"))
        let modelRequest = ModelRequest(system: "sys", messages: [
            ModelMessage(role: .assistant, text: "dropped: a conversation starts with the user"),
            ModelMessage(role: .user, text: "a"), ModelMessage(role: .user, text: "b"), ModelMessage(role: .assistant, text: "c"), ModelMessage(role: .user, text: "d"),
        ], maxOutputTokens: 300, temperature: 0.4)
        let request = try await model.httpRequest(modelRequest)
        #expect(request.url == "http://127.0.0.1:1/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream")
        #expect(request.headers.first(name: "Authorization") == "Bearer k")
        let body = try #require(try bodyJSON(model, modelRequest))
        #expect(body["system"] as? [[String: String]] == [["text": "sys"]])
        let messages = try #require(body["messages"] as? [[String: Any]])
        #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user"])
        #expect((messages[0]["content"] as? [[String: String]]) == [["text": "a\n\nb"]])
        let inference = try #require(body["inferenceConfig"] as? [String: Any])
        #expect(inference["maxTokens"] as? Int == 300)
        #expect(inference["temperature"] as? Double == 0.4)
        #expect(inference["topP"] as? Double == 0.9)
        let guardrail = try #require(body["guardrailConfig"] as? [String: String])
        #expect(guardrail["guardrailIdentifier"] == "gr-1" && guardrail["guardrailVersion"] == "DRAFT")
    }

    @Test func invokeBodyIsAnAnthropicMessagesRequest() async throws {
        let model = bedrockModel("http://127.0.0.1:1", api: .invoke, bearer: "k")
        let request = try await model.httpRequest(ask("q"))
        #expect(request.url.hasSuffix("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream"))
        let body = try #require(try bodyJSON(model, ask("q")))
        #expect(body["anthropic_version"] as? String == "bedrock-2023-05-31")
        #expect(body["max_tokens"] as? Int == 512)
        #expect(body["system"] as? String == "You are a careful health companion.")
        #expect(body["top_p"] as? Double == 0.9)
        let messages = try #require(body["messages"] as? [[String: Any]])
        #expect((messages.last?["content"] as? [[String: String]]) == [["type": "text", "text": "q"]])
    }

    func bodyJSON(_ model: BedrockModel, _ request: ModelRequest) throws -> [String: Any]? {
        try JSONSerialization.jsonObject(with: Data(model.requestBody(request))) as? [String: Any]
    }

    @Test func httpErrorCodeComesFromTheHeaderElseTheBody() {
        var headers = HTTPHeaders()
        headers.add(name: "x-amzn-ErrorType", value: "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
        #expect(BedrockModel.httpError(status: 429, headers: headers, body: nil).kind == .throttled)
        let body = ByteBuffer(string: #"{"__type":"com.amazon.bedrock#ValidationException","message":"echoes the request"}"#)
        let error = BedrockModel.httpError(status: 400, headers: [:], body: body)
        #expect(error == ModelError(kind: .invalidRequest, retryable: false, detail: "bedrock HTTP 400 ValidationException"))
        #expect(BedrockModel.httpError(status: 502, headers: [:], body: nil) == ModelError(kind: .unavailable, retryable: true, detail: "bedrock HTTP 502"))
    }

    @Test func settingParsesOptionsRegionEndpointAndAuthentication() throws {
        let env = ["AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://b", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://a/", "HOME": "/nonexistent"]
        let c = try BedrockConfiguration.parse("\(haiku)?api=invoke&temperature=0.3&top_p=0.8&max_tokens=700&guardrail=g1:3&timeout=5&retries=2", environment: env)
        #expect(c.modelID == haiku && c.api == .invoke && c.region == "eu-west-1" && c.endpoint == "http://a")
        #expect(c.temperature == 0.3 && c.topP == 0.8 && c.maxTokens == 700 && c.guardrail == .init(identifier: "g1", version: "3"))
        #expect(c.requestTimeout == .seconds(5) && c.retryPolicy.maxAttempts == 2)
        if case .sigV4 = c.authentication {} else { Issue.record("expected SigV4") }
        let bearer = try BedrockConfiguration.parse(haiku, environment: ["AWS_DEFAULT_REGION": "us-west-2", "AWS_BEARER_TOKEN_BEDROCK": "key", "HOME": "/nonexistent"])
        #expect(bearer.endpoint == "https://bedrock-runtime.us-west-2.amazonaws.com" && bearer.api == .converse)
        if case .bearer(let token) = bearer.authentication { #expect(token == "key") } else { Issue.record("expected bearer") }
        #expect(try BedrockConfiguration.parse(haiku + "?region=ap-northeast-1", environment: ["AWS_ENDPOINT_URL": "http://b", "HOME": "/nonexistent"]).endpoint == "http://b")
        #expect(throws: BedrockConfiguration.SettingError.self) { try BedrockConfiguration.parse(haiku, environment: ["HOME": "/nonexistent"]) }
        #expect(throws: BedrockConfiguration.SettingError.self) { try BedrockConfiguration.parse(haiku + "?temperature=3", environment: env) }
        #expect(throws: BedrockConfiguration.SettingError.self) { try BedrockConfiguration.parse(haiku + "?colour=red", environment: env) }
        #expect(throws: BedrockConfiguration.SettingError.self) { try BedrockConfiguration.parse("", environment: env) }
    }

    @Test func streamExceptionCodesMapToKindAndRetryability() {
        let table: [(String, ModelError.Kind, Bool)] = [
            ("throttlingException", .throttled, true), ("modelStreamErrorException", .failed, true),
            ("validationException", .invalidRequest, false), ("serviceUnavailableException", .unavailable, true),
            ("internalServerException", .unavailable, true), ("modelTimeoutException", .unavailable, true),
            ("somethingNewException", .failed, false),
        ]
        for (code, kind, retryable) in table {
            let error = BedrockErrors.error(code: code, status: nil, inStream: true)
            #expect(error.kind == kind && error.retryable == retryable, "\(code)")
        }
    }

    @Test func aStreamCutBeforeItsStopIsARetryableFailure() async throws {
        // A stream of only messageStart + one delta, with no messageStop: the client must not call it complete.
        let encoder = EventStreamEncoder()
        func event(_ type: String, _ json: String) throws -> [UInt8] {
            try encoder.encode(EventStreamMessage(headers: [
                .init(name: ":event-type", value: .string(type)), .init(name: ":message-type", value: .string("event")),
            ], payload: Array(json.utf8)))
        }
        var mapper = BedrockStreamMapper(api: .converse)
        var decoder = EventStreamDecoder()
        try decoder.append(try event("messageStart", #"{"role":"assistant"}"#) + event("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#))
        var events: [ModelEvent] = []
        while let message = try decoder.next() { try mapper.map(message) { events.append($0) } }
        #expect(events == [.delta("hi")])
        #expect(!mapper.stopped)
    }
}

@Suite struct StandInSignatureTests {
    let verifier = SigV4Verifier(credentials: BedrockStandIn.testCredentials, service: "bedrock")
    let now = Date(timeIntervalSince1970: 1_790_000_000)

    func signed(body: [UInt8], path: String = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream") throws -> [(name: String, value: String)] {
        let request = SigV4Request(method: "POST", path: path, headers: [.init("Host", "127.0.0.1:9"), .init("Content-Type", "application/json")], payload: .bytes(body))
        let result = try SigV4Signer(service: "bedrock", region: "us-west-2").sign(request, credentials: BedrockStandIn.testCredentials, date: now)
        return result.request.headers.map { ($0.name, $0.value) }
    }

    @Test func aCorrectSignatureIsAcceptedAndItsRegionReported() throws {
        let body = Array(#"{"messages":[]}"#.utf8)
        let region = try verifier.verify(method: "POST", path: "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream", query: nil, headers: try signed(body: body), body: body, now: now)
        #expect(region == "us-west-2")
    }

    @Test func tamperedBodyPathOrStaleDateIsRefused() throws {
        let body = Array(#"{"messages":[]}"#.utf8)
        let headers = try signed(body: body)
        let path = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
        #expect(throws: SigV4Verifier.Failure.self) {
            try verifier.verify(method: "POST", path: path, query: nil, headers: headers, body: Array(#"{"messages":[1]}"#.utf8), now: now)
        }
        do {
            _ = try verifier.verify(method: "POST", path: "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse-stream", query: nil, headers: headers, body: body, now: now)
            Issue.record("a path encoded differently from the signed one was accepted")
        } catch {
            #expect(error.code == "InvalidSignatureException")
        }
        do {
            _ = try verifier.verify(method: "POST", path: path, query: nil, headers: headers, body: body, now: now.addingTimeInterval(16 * 60))
            Issue.record("a request signed 16 minutes ago was accepted")
        } catch {
            #expect(error.code == "InvalidSignatureException" && error.message.hasPrefix("Signature expired"))
        }
        #expect(throws: SigV4Verifier.Failure(code: "MissingAuthenticationTokenException", message: "Missing Authentication Token")) {
            try verifier.verify(method: "POST", path: path, query: nil, headers: headers.filter { $0.name != "Authorization" }, body: body, now: now)
        }
    }
}
