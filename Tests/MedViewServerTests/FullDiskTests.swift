import Foundation
import HTTPTypes
import MedViewCore
import MedViewProtocol
import MedViewServer
import NIOCore
import Testing
import MedViewTestSupport

/// A tiny tmpfs mounted for one test (needs root, or CAP_SYS_ADMIN; CI runs as root).
struct TinyFileSystem {
    let path: String

    /// Whether this process may mount a tmpfs here (tried once).
    static let canMount: Bool = {
        guard let fs = try? TinyFileSystem(sizeKiB: 64) else { return false }
        fs.unmount()
        return true
    }()

    struct MountFailed: Error {}

    init(sizeKiB: Int) throws {
        path = NSTemporaryDirectory() + "medview-tmpfs-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeKiB)k,mode=0700", "tmpfs", path]) == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw MountFailed()
        }
    }

    /// Writes a file until the file system is full.
    func fill() -> String {
        let filler = path + "/filler"
        _ = Self.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=4096"])
        return filler
    }

    func unmount() {
        _ = Self.run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return -1
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct FullDiskTests {
    @Test(
        "on a full disk an answer ends with a retryable storage_unavailable (never stream.end), /readyz says the store is not ready and a metric counts it; when space returns the kept text is stored and readiness returns",
        .enabled(if: TinyFileSystem.canMount, "skipped: mounting a tmpfs is not permitted here (needs root)")
    )
    func fullDisk() async throws {
        let fs = try TinyFileSystem(sizeKiB: 8 * 1024)
        defer { fs.unmount() }
        try await LiveServer.with(dataDirectory: fs.path, configure: { $0.chat.storeRetryInterval = .milliseconds(100) }) { server in
            func readiness() async throws -> (HTTPResponse.Status, String?) {
                let response = try await server.request("/readyz", user: nil)
                return (response.status, json(response)["store"] as? String)
            }
            #expect(try await readiness().0 == .ok)
            let ws = try await server.connect("alice")
            defer { ws.close() }
            // A long answer (about 100 KB), slow enough to fill the disk after its message is stored.
            ws.send(.chatSend(ChatSend(id: "full-1", text: "Sleep tips [[delay:4]] [[delta:300]] [[repeat:250]]")))
            let acked = try #require(ack(try await ws.next()))
            let streamId = try #require(acked.streamId)
            let conversation = try #require(acked.conversationId)
            guard case .streamStart = try await ws.next() else { Issue.record("expected stream.start"); return }
            let filler = fs.fill()

            var events = try await ws.readStream(streamId, timeout: .seconds(60))
            events.removeAll { $0.seq == 1 }
            let last = try #require(events.last)
            let terminal = try #require(errorEvent(last), "the answer must not end with \(last)")
            #expect(terminal.code.rawValue == "storage_unavailable")
            #expect(terminal.retryable)
            #expect(terminal.seq != nil)
            let sent = chunks(events).map(\.text).joined()
            #expect(sent.utf8.count > 50_000)

            let (status, store) = try await readiness()
            #expect(status == .serviceUnavailable)
            #expect(store == "write_failing")
            let metrics = String(buffer: try await server.request("/metrics", user: nil).body)
            #expect(metrics.contains("medview_store_write_failures_total{operation=\"finish_turn\"}"))
            #expect(metrics.contains("medview_unsaved_answers 1.0"))

            // Space returns: the kept answer is written (failed, with the text the client received) and readiness returns.
            try FileManager.default.removeItem(atPath: filler)
            let deadline = ContinuousClock.now + .seconds(20)
            while try await readiness().0 != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await readiness().0 == .ok)
            let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]] ?? []
            let answer = try #require(messages.first { $0["role"] as? String == "assistant" })
            #expect(answer["status"] as? String == "failed")
            #expect(answer["text"] as? String == sent)
            // And the stored replay log ends as the live stream did.
            let replay = parseSSE(String(buffer: try await server.request("/v1/streams/\(streamId)", user: "alice", headers: [.accept: "text/event-stream"]).body)).map(\.event)
            #expect(replay.last == events.last)
        }
    }
}
