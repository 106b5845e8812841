/// Why the local model could not be loaded, fetched or run. Details never contain user text.
public enum LocalModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not a readable GGUF file.
    case file(GGUFError)
    /// The model's architecture is not one this engine runs.
    case unsupportedArchitecture(String)
    /// The tokenizer is not a byte-level BPE (gpt2) tokenizer, or its data is inconsistent.
    case unsupportedTokenizer(String)
    /// A tensor has a ggml type this engine does not compute with.
    case unsupportedTensorType(UInt32)
    /// A tensor's shape does not match the hyperparameters.
    case shapeMismatch(String)
    /// The model file could not be fetched or failed its checksum.
    case fetchFailed(String)

    public var description: String {
        switch self {
        case let .file(error): error.description
        case let .unsupportedArchitecture(a): "unsupported model architecture '\(a)' (only llama is supported)"
        case let .unsupportedTokenizer(t): "unsupported tokenizer: \(t)"
        case let .unsupportedTensorType(t): "unsupported tensor type \(t) (supported: F32, F16, Q4_1, Q8_0)"
        case let .shapeMismatch(what): "tensor shape mismatch: \(what)"
        case let .fetchFailed(why): "model fetch failed: \(why)"
        }
    }
}
