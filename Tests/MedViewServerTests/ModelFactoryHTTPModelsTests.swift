import MedViewCore
import MedViewModels
import MedViewProtocol
import MedViewServer
import Testing

/// Selecting the Anthropic and OpenAI-compatible models with one `--model` setting.
@Suite struct ModelFactoryHTTPModelsTests {
    func make(_ setting: String, _ environment: [String: String] = [:]) async throws -> any ChatModel {
        try await ModelFactory.make(setting, context: .init(environment: environment))
    }

    /// The refusal's message, or `nil` when the setting was accepted.
    func refusal(_ setting: String, _ environment: [String: String] = [:]) async -> String? {
        do {
            _ = try await make(setting, environment)
            return nil
        } catch let error as ModelFactory.UnknownModel {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func anthropicTakesTheModelIdAndTheKeyAndBaseURLFromTheEnvironment() async throws {
        let model = try #require(try await make("anthropic:claude-3-5-haiku-latest", ["ANTHROPIC_API_KEY": "sk-ant-xyz", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999"]) as? AnthropicModel)
        #expect(model.descriptor == ModelDescriptor(provider: "anthropic", id: "claude-3-5-haiku-latest", demo: false))
        #expect(model.configuration.apiKey.value == "sk-ant-xyz")
        #expect(model.configuration.baseURL == "http://127.0.0.1:9999")
        let standard = try #require(try await make("anthropic:claude-sonnet-4-5", ["ANTHROPIC_API_KEY": "k"]) as? AnthropicModel)
        #expect(standard.configuration.baseURL == "https://api.anthropic.com")
    }

    @Test func anthropicRefusesAMissingKeyAnEmptyModelAndABadBaseURL() async {
        let missing = await refusal("anthropic:claude-3-5-haiku-latest")
        #expect(missing?.contains("ANTHROPIC_API_KEY is not set") == true)
        #expect(await refusal("anthropic:claude-3-5-haiku-latest", ["ANTHROPIC_API_KEY": ""])?.contains("ANTHROPIC_API_KEY") == true)
        #expect(await refusal("anthropic:", ["ANTHROPIC_API_KEY": "k"])?.contains("Name the model") == true)
        #expect(await refusal("anthropic", ["ANTHROPIC_API_KEY": "k"])?.contains("Name the model") == true)
        let badURL = await refusal("anthropic:m", ["ANTHROPIC_API_KEY": "secret-key", "ANTHROPIC_BASE_URL": "localhost:8080"])
        #expect(badURL?.contains("ANTHROPIC_BASE_URL") == true)
        #expect(badURL?.contains("secret-key") == false)
    }

    @Test func openAITakesABaseURLAndAModelNameAfterTheHash() async throws {
        let model = try #require(try await make("openai:http://127.0.0.1:8080/v1#model-name") as? OpenAICompatibleModel)
        #expect(model.descriptor == ModelDescriptor(provider: "openai", id: "model-name", demo: false))
        #expect(model.configuration.baseURL == "http://127.0.0.1:8080/v1")
        #expect(model.configuration.apiKey == nil)
        let withKey = try #require(try await make("openai:https://llm.example.internal/v1#org/llama-3.1-8b", ["OPENAI_API_KEY": "sk-1"]) as? OpenAICompatibleModel)
        #expect(withKey.configuration.model == "org/llama-3.1-8b")
        #expect(withKey.configuration.apiKey?.value == "sk-1")
    }

    @Test func openAIWithOnlyAModelNameUsesOpenAIOrTheBaseURLFromTheEnvironment() async throws {
        let hosted = try #require(try await make("openai:gpt-4o-mini", ["OPENAI_API_KEY": "sk-1"]) as? OpenAICompatibleModel)
        #expect(hosted.configuration.baseURL == "https://api.openai.com/v1")
        let local = try #require(try await make("openai:llama3.2", ["OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"]) as? OpenAICompatibleModel)
        #expect(local.configuration.baseURL == "http://127.0.0.1:11434/v1")
    }

    @Test func openAIRefusesMalformedSettings() async {
        #expect(await refusal("openai:http://127.0.0.1:8080/v1")?.contains("after '#'") == true)
        #expect(await refusal("openai:http://127.0.0.1:8080/v1#")?.contains("Name the model") == true)
        #expect(await refusal("openai:ftp://127.0.0.1/v1#m")?.contains("not an http") == true)
        #expect(await refusal("openai:http://#m")?.contains("not an http") == true)
        #expect(await refusal("openai:http://127.0.0.1:8080/v1?x=1#m")?.contains("not an http") == true)
        #expect(await refusal("openai:")?.contains("Name the model") == true)
        #expect(await refusal("openai:m", ["OPENAI_BASE_URL": "not a url"])?.contains("not an http") == true)
    }

    @Test func theModelTimeoutComesFromTheEnvironmentAndMustBePositive() async throws {
        let model = try #require(try await make("openai:http://127.0.0.1:1/v1#m", ["MEDVIEW_MODEL_TIMEOUT_SECONDS": "5"]) as? OpenAICompatibleModel)
        #expect(model.configuration.timeouts.response == .seconds(5))
        #expect(model.configuration.timeouts.idle == .seconds(5))
        #expect(await refusal("openai:http://127.0.0.1:1/v1#m", ["MEDVIEW_MODEL_TIMEOUT_SECONDS": "0"])?.contains("MEDVIEW_MODEL_TIMEOUT_SECONDS") == true)
        #expect(await refusal("anthropic:m", ["ANTHROPIC_API_KEY": "k", "MEDVIEW_MODEL_TIMEOUT_SECONDS": "soon"])?.contains("MEDVIEW_MODEL_TIMEOUT_SECONDS") == true)
    }

    @Test func theModelHTTPClientIsTheLeanOneUnlessAsyncHTTPClientIsChosen() async throws {
        let lean = try #require(try await make("openai:http://127.0.0.1:1/v1#m", [:]) as? OpenAICompatibleModel)
        #expect(lean.httpClientName == "lean")
        let chosen = try #require(try await make("anthropic:m", ["ANTHROPIC_API_KEY": "k", "MEDVIEW_MODEL_HTTP_CLIENT": "AsyncHTTPClient"]) as? AnthropicModel)
        #expect(chosen.httpClientName == "asynchttpclient")
        #expect(await refusal("openai:http://127.0.0.1:1/v1#m", ["MEDVIEW_MODEL_HTTP_CLIENT": "curl"])?.contains("MEDVIEW_MODEL_HTTP_CLIENT") == true)
    }

    @Test func anUnknownProviderStillListsTheSupportedOnes() async {
        let message = await refusal("gemini:pro")
        #expect(message?.contains("Unknown model setting") == true)
        #expect(message?.contains("anthropic:MODEL_ID") == true)
        #expect(message?.contains("openai:BASE_URL#MODEL") == true)
    }
}
