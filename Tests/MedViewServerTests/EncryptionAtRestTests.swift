import Foundation
import HTTPTypes
import MedViewCore
import MedViewModels
import MedViewServer
import MedViewStore
import NIOCore
import Testing

@Suite(.timeLimit(.minutes(2))) struct EncryptionAtRestTests {
    @Test("the server encrypts by default: after a conversation, no file of the data directory holds the patient's or the model's words")
    func defaultServerStoresNoPlaintext() async throws {
        let directory = NSTemporaryDirectory() + "medview-test-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let model = ScriptedModel(configuration: .init(deltaDelay: .milliseconds(1), reply: "Grapefruit raises felodipine levels; ask your pharmacist."))
        try await LiveServer.with(dataDirectory: directory, model: model) { server in
            #expect(server.chat.store is EncryptedConversationStore)
            let created = try await server.request("/v1/conversations", .post, user: "alice")
            let conversation = try #require(json(created)["id"] as? String)
            let body = #"{"id":"m1","text":"Is grapefruit safe with my felodipine for hypertension?"}"#
            let answer = try await server.request("/v1/conversations/\(conversation)/messages", .post, user: "alice", headers: [.accept: "text/event-stream", .contentType: "application/json"], body: body)
            #expect(String(buffer: answer.body).contains("pharmacist"))
            let messages = json(try await server.request("/v1/conversations/\(conversation)/messages", user: "alice"))["messages"] as? [[String: Any]]
            #expect(messages?.first?["text"] as? String == "Is grapefruit safe with my felodipine for hypertension?")
            #expect((messages?.last?["text"] as? String)?.contains("pharmacist") == true)
            scan(directory)
        }
        scan(directory)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: directory + "/master.key")[.posixPermissions] as? Int)
        #expect(mode & 0o777 == 0o600)
    }

    func scan(_ directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            let text = String(decoding: data.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
            for word in ["grapefruit", "felodipine", "hypertension", "pharmacist"] {
                #expect(!text.contains(word), "\(word) found in \(name)")
            }
        }
    }

    @Test("encryption settings: local by default, kms with a key id, off refused in production, conflicts named")
    func settings() throws {
        let defaults = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [:])
        #expect(defaults.encryption == EncryptionSettings(provider: .local(masterKeyFile: nil)))
        #expect(defaults.encryption.masterKeyFile(dataDirectory: "./data") == "./data/master.key")
        var a = ServeArguments()
        a.masterKeyFile = "/etc/medview/master.key"
        #expect(try ServerConfiguration.resolve(arguments: a, environment: [:]).encryption.provider == .local(masterKeyFile: "/etc/medview/master.key"))
        #expect(try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_KMS_KEY_ID": "alias/medview"]).encryption.provider == .kms(keyId: "alias/medview"))
        #expect(try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_KEY_PROVIDER": "off"]).encryption.provider == .off)
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_KEY_PROVIDER": "off", "MEDVIEW_ENV": "production"]) }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_KEY_PROVIDER": "kms"]) }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_KEY_PROVIDER": "rot13"]) }
        a.kmsKeyId = "alias/medview"
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.resolve(arguments: a, environment: [:]) }
    }
}
