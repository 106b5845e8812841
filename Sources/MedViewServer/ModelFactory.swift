import MedViewCore
import MedViewModels

/// Turns the `--model` setting into a ``ChatModel``.
public enum ModelFactory {
    /// Why a model setting was refused.
    public struct UnknownModel: Error, CustomStringConvertible {
        public var setting: String
        public var description: String {
            "Unknown model setting '\(setting)'. Supported now: 'scripted' or 'scripted:delay=MS,delta=N'."
        }
    }

    /// The model for `setting`; empty means the default (the scripted model, until the embedded local model ships).
    public static func make(_ setting: String) throws -> any ChatModel {
        let trimmed = setting.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "scripted" {
            return ScriptedModel()
        }
        guard trimmed.hasPrefix("scripted:") else { throw UnknownModel(setting: setting) }
        var configuration = ScriptedModel.Configuration()
        for pair in trimmed.dropFirst("scripted:".count).split(separator: ",") {
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
}
