import Foundation
import MedViewCore
import MedViewModels

extension ModelFactory {
    /// `anthropic:<model-id>`: the Anthropic Messages API.
    ///
    /// Needs `ANTHROPIC_API_KEY`; `ANTHROPIC_BASE_URL` replaces `https://api.anthropic.com`
    /// (a proxy, or a stand-in in tests); `MEDVIEW_MODEL_TIMEOUT_SECONDS` sets the response and idle timeouts.
    static func anthropic(_ details: String?, setting: String, context: Context) throws -> any ChatModel {
        let model = (details ?? "").trimmingCharacters(in: .whitespaces)
        guard !model.isEmpty else {
            throw UnknownModel(setting: setting, reason: "Name the model after the colon, for example 'anthropic:claude-3-5-haiku-latest'.")
        }
        guard let key = context.environment["ANTHROPIC_API_KEY"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            throw UnknownModel(setting: setting, reason: "ANTHROPIC_API_KEY is not set; anthropic models need an API key.")
        }
        var baseURL = AnthropicModel.defaultBaseURL
        if let override = context.environment["ANTHROPIC_BASE_URL"], !override.isEmpty {
            baseURL = try httpURL(override, name: "ANTHROPIC_BASE_URL", setting: setting)
        }
        let configuration = AnthropicModel.Configuration(
            model: model,
            apiKey: APIKey(key),
            baseURL: baseURL,
            timeouts: try timeouts(context, setting: setting)
        )
        return AnthropicModel(configuration: configuration, client: try http(context, setting: setting), logger: context.logger)
    }

    /// `openai:<base-url>#<model>` (a local Ollama, vLLM or llama.cpp server, or any compatible API),
    /// or `openai:<model>` with the base URL from `OPENAI_BASE_URL` (default `https://api.openai.com/v1`).
    ///
    /// `OPENAI_API_KEY`, when set, is sent as a bearer token.
    static func openAI(_ details: String?, setting: String, context: Context) throws -> any ChatModel {
        let value = (details ?? "").trimmingCharacters(in: .whitespaces)
        let base: String
        let model: String
        if value.contains("://") {
            guard let hash = value.lastIndex(of: "#") else {
                throw UnknownModel(setting: setting, reason: "Add the model name after '#', for example 'openai:http://127.0.0.1:8080/v1#llama3'.")
            }
            base = String(value[..<hash])
            model = String(value[value.index(after: hash)...]).trimmingCharacters(in: .whitespaces)
        } else {
            base = context.environment["OPENAI_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.openai.com/v1"
            model = value
        }
        guard !model.isEmpty else {
            throw UnknownModel(setting: setting, reason: "Name the model, for example 'openai:http://127.0.0.1:11434/v1#llama3.2' or 'openai:gpt-4o-mini'.")
        }
        let url = try httpURL(base, name: "the base URL", setting: setting)
        let key = context.environment["OPENAI_API_KEY"].flatMap { $0.isEmpty ? nil : APIKey($0) }
        let configuration = OpenAICompatibleModel.Configuration(baseURL: url, model: model, apiKey: key, timeouts: try timeouts(context, setting: setting))
        return OpenAICompatibleModel(configuration: configuration, client: try http(context, setting: setting), logger: context.logger)
    }

    /// `raw` if it is an absolute http(s) URL with a host and no query or fragment.
    static func httpURL(_ raw: String, name: String, setting: String) throws -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespaces)
        guard let url = URL(string: trimmed),
              let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty,
              url.query == nil, url.fragment == nil
        else {
            throw UnknownModel(setting: setting, reason: "\(name) '\(trimmed)' is not an http:// or https:// URL with a host.")
        }
        return trimmed
    }

    /// The response and idle timeouts: `MEDVIEW_MODEL_TIMEOUT_SECONDS`, else the defaults (60 s each).
    static func timeouts(_ context: Context, setting: String) throws -> ModelTimeouts {
        var timeouts = ModelTimeouts()
        if let raw = context.environment["MEDVIEW_MODEL_TIMEOUT_SECONDS"], !raw.isEmpty {
            guard let seconds = Int(raw), seconds > 0 else {
                throw UnknownModel(setting: setting, reason: "MEDVIEW_MODEL_TIMEOUT_SECONDS must be a whole number of seconds above 0.")
            }
            timeouts.response = .seconds(seconds)
            timeouts.idle = .seconds(seconds)
            timeouts.total = max(timeouts.total, .seconds(seconds * 2))
        }
        return timeouts
    }

    /// The HTTP client model calls go through: `MEDVIEW_MODEL_HTTP_CLIENT` is `lean` (the
    /// default: ``ModelHTTP1Client``, HTTP/1.1 with kept-alive connections) or `asynchttpclient`
    /// (AsyncHTTPClient, which also speaks HTTP/2 to a provider that offers it).
    static func http(_ context: Context, setting: String) throws -> ModelHTTP {
        guard let client = ModelHTTP.named(context.environment["MEDVIEW_MODEL_HTTP_CLIENT"]) else {
            throw UnknownModel(setting: setting, reason: "MEDVIEW_MODEL_HTTP_CLIENT must be 'lean' (the default) or 'asynchttpclient'.")
        }
        return client
    }
}
