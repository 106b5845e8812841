import MedViewCore
import MedViewModels
import MedViewServer
import Testing

@Suite struct ModelFactoryBedrockTests {
    let environment = ["AWS_REGION": "eu-west-1", "HOME": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"]

    @Test func bedrockSettingsSelectTheAPIAndKeepTheModelID() async throws {
        let converse = try await ModelFactory.make("bedrock:anthropic.claude-3-5-haiku-20241022-v1:0", context: .init(environment: environment))
        #expect(converse.descriptor == .init(provider: "bedrock", id: "anthropic.claude-3-5-haiku-20241022-v1:0", demo: false))
        #expect((converse as? BedrockModel)?.configuration.api == .converse)
        #expect((converse as? BedrockModel)?.configuration.endpoint == "https://bedrock-runtime.eu-west-1.amazonaws.com")
        let invoke = try await ModelFactory.make("bedrock-invoke:anthropic.claude-3-5-haiku-20241022-v1:0", context: .init(environment: environment))
        #expect((invoke as? BedrockModel)?.configuration.api == .invoke)
        let viaOption = try await ModelFactory.make("bedrock:anthropic.claude-3-5-haiku-20241022-v1:0?api=invoke", context: .init(environment: environment))
        #expect((viaOption as? BedrockModel)?.configuration.api == .invoke)
    }

    @Test func aBedrockSettingWithoutRegionOrModelIsRefusedWithTheReason() async {
        do {
            _ = try await ModelFactory.make("bedrock:anthropic.claude-3-5-haiku-20241022-v1:0", context: .init(environment: ["HOME": "/nonexistent"]))
            Issue.record("a setting without a region was accepted")
        } catch let error as ModelFactory.UnknownModel {
            #expect(error.description.contains("no region"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        await #expect(throws: ModelFactory.UnknownModel.self) { try await ModelFactory.make("bedrock:", context: .init(environment: environment)) }
        await #expect(throws: ModelFactory.UnknownModel.self) { try await ModelFactory.make("bedrock:m?top_p=7", context: .init(environment: environment)) }
    }
}
