import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `medview serve` child process on a free loopback port, with its own temporary data directory.
final class BenchServer: @unchecked Sendable {
    let process = Process()
    let port: Int
    let dataDirectory: String
    private let output = Pipe()

    /// Starts `executable serve ...` and waits for its "listening on" line.
    /// `quietErrors` sends the server's standard error (logs, EMF records) to /dev/null.
    init(executable: String, extraArguments: [String], quietErrors: Bool = false) throws {
        dataDirectory = NSTemporaryDirectory() + "medview-bench-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: executable)
        // The benchmark measures the engine: one user sends far more than a patient could.
        process.arguments = ["serve", "--port", "0", "--data-dir", dataDirectory, "--log-level", "error", "--rate-limit-per-minute", "1000000", "--rate-limit-burst", "1000000"] + extraArguments
        process.standardOutput = output
        process.standardError = quietErrors ? FileHandle.nullDevice : FileHandle.standardError
        try process.run()
        var buffer = Data()
        let handle = output.fileHandleForReading
        var found: Int?
        let deadline = Date().addingTimeInterval(60)
        while found == nil, Date() < deadline {
            let data = handle.availableData
            if data.isEmpty { break }
            buffer.append(data)
            let text = String(decoding: buffer, as: UTF8.self)
            if let range = text.range(of: "listening on http://127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                found = Int(digits)
            }
        }
        guard let found else {
            process.terminate()
            throw BenchError("the server did not report a port")
        }
        port = found
        // Keep draining stdout so the child never blocks on a full pipe.
        handle.readabilityHandler = { h in _ = h.availableData }
    }

    /// Resident memory of the server process, in bytes (from /proc).
    func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    /// The server's exact latency quantiles (`/metrics` itself has histograms).
    func metrics() async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics/exact")!)
        return String(decoding: data, as: UTF8.self)
    }

    func stop() {
        process.interrupt()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
