import ArgumentParser
import Foundation
import Logging
import MedViewStandIns
import ServiceLifecycle

/// `medview dev …`: local development helpers.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Local development helpers (stand-ins for cloud services).",
        subcommands: [BedrockStandInCommand.self]
    )
}

struct BedrockStandInCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bedrock-standin",
        abstract: "Run a local Amazon Bedrock Runtime stand-in (ConverseStream, InvokeModelWithResponseStream).",
        discussion: """
            Checks the SigV4 signature of every request against fixed test keys (printed at start) or \
            accepts the printed test API key as a bearer token, and answers with scripted event streams. \
            Directives in the last user message script the answer: [[say:TEXT]], [[delta:N]], [[delay:MS]], \
            [[repeat:N]], [[throttle:N]], [[stream-throttle:N]], [[http:STATUS:CODE]], [[exception:TYPE]], \
            [[fail-after:N]], [[stop:REASON]] (see docs/AWS.md). Stops on SIGINT or SIGTERM.
            """
    )

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free one.")
    var port: Int = 0

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let standIn = BedrockStandIn(configuration: .init(host: host, port: port))
        let credentials = standIn.configuration.credentials
        let host = self.host
        let app = standIn.application(logger: Logger(label: "bedrock-standin")) { port in
            let endpoint = "http://\(host):\(port)"
            for line in [
                "Bedrock stand-in listening on \(endpoint)",
                "  Test settings (fixed test keys, not AWS keys):",
                "  AWS_ENDPOINT_URL_BEDROCK_RUNTIME=\(endpoint)",
                "  AWS_REGION=us-east-1",
                "  AWS_ACCESS_KEY_ID=\(credentials.accessKeyID)",
                "  AWS_SECRET_ACCESS_KEY=\(credentials.secretAccessKey)",
                "  or instead of the keys: AWS_BEARER_TOKEN_BEDROCK=\(standIn.configuration.bearerToken)",
            ] {
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "bedrock-standin")))
        try await group.run()
    }
}
