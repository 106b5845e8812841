import AsyncHTTPClient
import Foundation
import MedViewAWS
import MedViewCore
import MedViewStore
import Testing

/// moto's KMS in server mode on loopback, started for one test and always stopped after.
struct MotoServer {
    let process: Process
    let endpoint: URL

    /// Starts `moto_server -H 127.0.0.1 -p 0` (installing moto with pip if it is missing) and
    /// waits until it answers.
    static func start() async throws -> MotoServer {
        if !commandExists("moto_server") {
            let pip = Process()
            pip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            pip.arguments = ["python3", "-m", "pip", "install", "--quiet", "moto[server]"]
            try pip.run()
            pip.waitUntilExit()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["moto_server", "-H", "127.0.0.1", "-p", "0"]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("moto-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        defer { try? output.close(); try? FileManager.default.removeItem(at: log) }
        process.standardOutput = output
        process.standardError = output
        try process.run()
        // The bound port is in the log line "Running on http://127.0.0.1:N".
        var port: Int?
        let started = ContinuousClock.now
        while port == nil, ContinuousClock.now - started < .seconds(30), process.isRunning {
            let seen = String(decoding: FileManager.default.contents(atPath: log.path) ?? Data(), as: UTF8.self)
            if let range = seen.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                port = seen[range].split(separator: ":").last.flatMap { Int($0) }
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        guard let port else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw MotoError.didNotStart
        }
        let endpoint = URL(string: "http://127.0.0.1:\(port)")!
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: endpoint.absoluteString + "/moto-api/data.json"), timeout: .seconds(2)) {
                _ = try? await response.body.collect(upTo: 1 << 20)
                if response.status.code == 200 { return MotoServer(process: process, endpoint: endpoint) }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw MotoError.didNotStart
    }

    /// Stops moto with SIGKILL: a test process may ignore SIGTERM (signal handlers installed by
    /// service-lifecycle set it to SIG_IGN), and an ignored signal stays ignored across exec, so
    /// moto would never see a SIGTERM. It keeps no state worth a graceful stop.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    enum MotoError: Error { case didNotStart }

    static func commandExists(_ name: String) -> Bool {
        let which = Process()
        which.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        which.arguments = ["which", name]
        which.standardOutput = FileHandle.nullDevice
        which.standardError = FileHandle.nullDevice
        guard (try? which.run()) != nil else { return false }
        which.waitUntilExit()
        return which.terminationStatus == 0
    }
}

@Suite("KMS key provider against moto", .timeLimit(.minutes(2)))
struct KMSKeyProviderTests {
    /// Runs `body` with a KMS client on a fresh moto server, always stopped after.
    func withKMS(_ body: (KMSClient) async throws -> Void) async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let credentials = AWSCachedCredentials(EnvironmentCredentialProvider(environment: [
            "AWS_ACCESS_KEY_ID": "AKIDMEDVIEWTEST", "AWS_SECRET_ACCESS_KEY": "medview-test-secret",
        ]))
        let client = KMSClient(region: "us-east-1", endpoint: moto.endpoint, credentials: credentials)
        try await body(client)
    }

    @Test func dataKeysComeFromKMSAndAWrongEncryptionContextIsRefused() async throws {
        try await withKMS { client in
            let provider = KMSKeyProvider(keyId: try await client.createKey(description: "medview test"), client: client)
            let context = DataKeyContext(userId: "u_alice", conversationId: "c_1", version: 1)
            let generated = try await provider.generateDataKey(for: context)
            #expect(generated.plaintext.count == 32)
            #expect(generated.wrapped.provider == "kms")
            #expect(try await provider.unwrap(generated.wrapped) == generated.plaintext)

            // The same blob presented for another conversation or user: KMS refuses it.
            for other in [DataKeyContext(userId: "u_alice", conversationId: "c_2", version: 1), DataKeyContext(userId: "u_bob", conversationId: "c_1", version: 1)] {
                var moved = generated.wrapped
                moved.context = other
                await #expect(throws: EncryptionError.self) { try await provider.unwrap(moved) }
                do {
                    _ = try await provider.unwrap(moved)
                } catch let error as EncryptionError {
                    guard case .unwrapFailed = error else { Issue.record("expected unwrapFailed, got \(error)"); continue }
                }
            }
        }
    }

    @Test func anEncryptedStoreWorksEndToEndOnKMSAndRotatesToANewKMSKey() async throws {
        try await withKMS { client in
            let first = KMSKeyProvider(keyId: try await client.createKey(description: "medview first"), client: client)
            let keys = InMemoryDataKeyStore()
            let base = InMemoryConversationStore()
            let store = EncryptedConversationStore(base: base, ring: DataKeyRing(provider: first, keyStore: keys))
            let conversation = Sample.conversation(userId: "u_alice", title: "Warfarin and ibuprofen")
            let turn = Sample.turn(conversationId: conversation.id, userId: "u_alice", text: "Can I take ibuprofen with warfarin?")
            #expect(try await store.beginTurn(turn, newConversation: conversation) == .created)
            #expect(try await base.conversation(id: conversation.id, userId: "u_alice")?.title.hasPrefix("ev1:") == true)
            #expect(try await store.messages(conversationId: conversation.id, userId: "u_alice").first?.text == "Can I take ibuprofen with warfarin?")

            let second = KMSKeyProvider(keyId: try await client.createKey(description: "medview second"), client: client)
            #expect(try await KeyRotation.rotate(keyStore: keys, provider: second) == .init(rewrapped: 1, skipped: 0))
            #expect(try await keys.keys(conversationId: conversation.id, userId: "u_alice").map(\.masterKeyId) == [second.currentMasterKeyId])
            // A fresh ring (nothing cached) on the new key reads the old record.
            let rotated = EncryptedConversationStore(base: base, ring: DataKeyRing(provider: second, keyStore: keys))
            #expect(try await rotated.conversation(id: conversation.id, userId: "u_alice")?.title == "Warfarin and ibuprofen")
            try await rotated.close()
        }
    }
}
