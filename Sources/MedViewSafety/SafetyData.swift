import Foundation

/// Loads the curated data files shipped in the module's resource bundle (`Data/`).
enum SafetyData {
    /// The bytes of `Data/<name>` (a path relative to the data folder, like `eval/emergency.jsonl`).
    /// An absolute path (starting with `/`) reads that file instead.
    static func bytes(_ name: String) throws(SafetyDataError) -> Foundation.Data {
        if name.hasPrefix("/") {
            do {
                return try Foundation.Data(contentsOf: URL(fileURLWithPath: name))
            } catch {
                throw .missingFile(name)
            }
        }
        guard let root = Bundle.module.resourceURL?.appendingPathComponent("Data") else {
            throw .missingFile(name)
        }
        let url = root.appendingPathComponent(name)
        do {
            return try Foundation.Data(contentsOf: url)
        } catch {
            throw .missingFile(name)
        }
    }

    /// Decodes `Data/<name>` as JSON.
    static func decode<T: Decodable>(_ type: T.Type, from name: String) throws(SafetyDataError) -> T {
        let data = try bytes(name)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw .invalidFile(name, String(describing: error))
        }
    }

    /// Decodes `Data/<name>` as JSON Lines: one value per non-empty line.
    static func decodeLines<T: Decodable>(_ type: T.Type, from name: String) throws(SafetyDataError) -> [T] {
        let data = try bytes(name)
        let decoder = JSONDecoder()
        var out: [T] = []
        for (n, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() where !line.allSatisfy({ $0 == 32 }) {
            do {
                out.append(try decoder.decode(T.self, from: Foundation.Data(line)))
            } catch {
                throw .invalidFile(name, "line \(n + 1): \(error)")
            }
        }
        return out
    }

    /// The language rules, decoded once.
    static func language() throws(SafetyDataError) -> LanguageData {
        try decode(LanguageData.self, from: "language.json")
    }
}
