/// Why the safety layer's bundled data could not be loaded. These are packaging or data-entry
/// mistakes, caught by the tests; no client input can cause them.
public enum SafetyDataError: Error, Equatable, CustomStringConvertible {
    /// A data file is missing from the resource bundle.
    case missingFile(String)
    /// A data file could not be decoded.
    case invalidFile(String, String)
    /// A pattern in a data file is malformed.
    case badPattern(String, String)
    /// A data file refers to something that does not exist (a category, a drug, a class).
    case unknownReference(String, String)

    /// A description for logs (file names and pattern text only, never user input).
    public var description: String {
        switch self {
        case .missingFile(let f): "safety data file \(f) is missing from the bundle"
        case .invalidFile(let f, let why): "safety data file \(f) is invalid: \(why)"
        case .badPattern(let p, let why): "bad pattern '\(p)': \(why)"
        case .unknownReference(let file, let what): "\(file) refers to unknown \(what)"
        }
    }
}
