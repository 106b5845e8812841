import Crypto
import Foundation
import MedViewCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Master keys in a local file (the embedded default): data keys are wrapped with AES-256-GCM
/// under the current master key, bound to their ``DataKeyContext`` and the master key id.
///
/// The file (`master.key` in the data directory unless `--master-key-file` names another) is
/// JSON: `{"current": "mk_…", "keys": {"mk_…": "<base64 32 bytes>", …}}`. It is created on
/// first use with mode 0600, and refused if group or others may read it. Instances sharing one
/// database share this file. ``addMasterKey(path:)`` appends a new current key (rotation); older
/// keys stay so that keys they wrapped can be unwrapped until `medview keys rotate` re-wraps them.
public struct LocalKeyProvider: KeyProvider {
    public let name = "local"
    public let currentMasterKeyId: String
    private let keys: [String: SymmetricKey]
    /// Where the keys were read from.
    public let path: String

    struct File: Codable {
        var current: String
        var keys: [String: String]
    }

    /// Loads the master key file at `path`, creating it (mode 0600, one new key) if it is missing.
    /// - Throws: ``EncryptionError/providerUnavailable(_:)`` if it cannot be created or read, is
    ///   malformed, or may be read by group or others.
    public static func load(path: String) throws -> LocalKeyProvider {
        if !FileManager.default.fileExists(atPath: path) {
            let id = Identifier.make("mk")
            try write(File(current: id, keys: [id: newKeyBase64()]), to: path, exclusive: true)
        }
        return try read(path: path)
    }

    /// Adds a new master key to the file at `path` and makes it current; returns its id.
    @discardableResult
    public static func addMasterKey(path: String) throws -> String {
        var file = try readFile(path: path)
        let id = Identifier.make("mk")
        file.keys[id] = newKeyBase64()
        file.current = id
        try write(file, to: path, exclusive: false)
        return id
    }

    public func generateDataKey(for context: DataKeyContext) async throws -> GeneratedDataKey {
        let plaintext = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let wrapped = try wrap(plaintext, context: context, createdAt: Date())
        return GeneratedDataKey(plaintext: plaintext, wrapped: wrapped)
    }

    public func unwrap(_ key: WrappedDataKey) async throws -> Data {
        guard key.provider == name, let master = keys[key.masterKeyId] else {
            throw EncryptionError.unwrapFailed("master key \(key.masterKeyId) is not in the key file")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: key.blob)
            return try AES.GCM.open(box, using: master, authenticating: Self.aad(key.context, masterKeyId: key.masterKeyId))
        } catch {
            throw EncryptionError.unwrapFailed("the wrapped data key does not open under its master key and context")
        }
    }

    public func rewrap(_ key: WrappedDataKey) async throws -> WrappedDataKey {
        try wrap(try await unwrap(key), context: key.context, createdAt: key.createdAt)
    }

    private func wrap(_ plaintext: Data, context: DataKeyContext, createdAt: Date) throws -> WrappedDataKey {
        guard let master = keys[currentMasterKeyId] else { throw EncryptionError.providerUnavailable("no current master key") }
        do {
            let box = try AES.GCM.seal(plaintext, using: master, authenticating: Self.aad(context, masterKeyId: currentMasterKeyId))
            guard let blob = box.combined else { throw EncryptionError.providerUnavailable("AES-GCM seal failed") }
            return WrappedDataKey(context: context, provider: name, masterKeyId: currentMasterKeyId, blob: blob, createdAt: createdAt)
        } catch let error as EncryptionError {
            throw error
        } catch {
            throw EncryptionError.providerUnavailable("AES-GCM seal failed")
        }
    }

    static func aad(_ context: DataKeyContext, masterKeyId: String) -> Data {
        var data = Data("medview.datakey.v1".utf8)
        for part in [context.userId, context.conversationId, String(context.version), masterKeyId] {
            let bytes = Data(part.utf8)
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { data.append(contentsOf: $0) }
            data.append(bytes)
        }
        return data
    }

    // MARK: - The file

    private static func read(path: String) throws -> LocalKeyProvider {
        let file = try readFile(path: path)
        var keys: [String: SymmetricKey] = [:]
        for (id, base64) in file.keys {
            guard let bytes = Data(base64Encoded: base64), bytes.count == 32 else {
                throw EncryptionError.providerUnavailable("master key file \(path): key \(id) is not 32 bytes of base64")
            }
            keys[id] = SymmetricKey(data: bytes)
        }
        guard keys[file.current] != nil else {
            throw EncryptionError.providerUnavailable("master key file \(path): the current key is missing")
        }
        return LocalKeyProvider(currentMasterKeyId: file.current, keys: keys, path: path)
    }

    private static func readFile(path: String) throws -> File {
        var info = stat()
        guard stat(path, &info) == 0 else { throw EncryptionError.providerUnavailable("cannot read master key file \(path)") }
        guard info.st_mode & 0o077 == 0 else {
            throw EncryptionError.providerUnavailable("master key file \(path) may be read by others; run chmod 600 on it")
        }
        guard let data = FileManager.default.contents(atPath: path),
              let file = try? JSONDecoder().decode(File.self, from: data) else {
            throw EncryptionError.providerUnavailable("master key file \(path) is not a MedView key file")
        }
        return file
    }

    /// Writes `file` with mode 0600 from the start: exclusively (first run), or to a temporary
    /// file renamed over `path`.
    private static func write(_ file: File, to path: String, exclusive: Bool) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? encoder.encode(file) else { throw EncryptionError.providerUnavailable("cannot encode the key file") }
        let target = exclusive ? path : path + ".tmp-\(getpid())"
        let fd = Posix.open(target, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw EncryptionError.providerUnavailable("cannot create master key file \(target)") }
        let written = data.withUnsafeBytes { Posix.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        Posix.close(fd)
        guard written == data.count, synced else {
            unlink(target)
            throw EncryptionError.providerUnavailable("cannot write master key file \(target)")
        }
        if !exclusive, rename(target, path) != 0 {
            unlink(target)
            throw EncryptionError.providerUnavailable("cannot replace master key file \(path)")
        }
    }

    private static func newKeyBase64() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }
}

/// The POSIX calls whose names the key file code shadows.
private enum Posix {
    #if canImport(Glibc)
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Glibc.open(path, flags, mode) }
    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { Glibc.write(fd, buffer, count) }
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }
    #else
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { Darwin.open(path, flags, mode) }
    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { Darwin.write(fd, buffer, count) }
    static func close(_ fd: Int32) { _ = Darwin.close(fd) }
    #endif
}
