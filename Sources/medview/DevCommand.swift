import ArgumentParser
import Foundation
import Logging
import MedViewStandIns
import ServiceLifecycle

/// `medview dev …`: local development helpers.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Local development helpers (stand-ins for cloud services).",
        subcommands: [BedrockStandInCommand.self, LambdaStandInCommand.self]
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

struct LambdaStandInCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lambda-standin",
        abstract: "Run a local stand-in for API Gateway WebSocket + Lambda (Runtime API, Management API, function URL).",
        discussion: """
            Prints one JSON line (and writes it to --port-file) once listening: the Runtime API address of each \
            function (its AWS_LAMBDA_RUNTIME_API), the WebSocket URL, the Management API endpoint, the function URL, \
            the region and the fixed test keys the Management API accepts (not AWS keys). Stops on SIGINT or SIGTERM.
            """
    )

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"
    @Option(help: "File to write the addresses to (JSON), once listening.")
    var portFile: String?
    @Option(help: "API Gateway stage.")
    var stage: String = "dev"
    @Option(help: "Region (ARNs, domain names, SigV4 scope).")
    var region: String = "us-east-1"
    @Option(help: "Function timeout in seconds (the invocation deadline).")
    var functionTimeout: Double = 30
    @Option(help: "Function for a route, ROUTE=FUNCTION ($connect, $disconnect, $default); repeatable. Default: all three to 'handler'.")
    var route: [String] = []
    @Option(help: "Function serving the function URL; empty for none.")
    var functionURLFunction: String = "handler"
    @Option(help: "WebSocket idle timeout in seconds; 0 for none.")
    var idleTimeout: Double = 600
    @Option(help: "Bytes a connection may have queued before the Management API answers 429.")
    var sendBuffer: Int = 4 * 1024 * 1024

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var configuration = LambdaStandInConfiguration(host: host, region: region, stage: stage, functionTimeout: .seconds(functionTimeout),
                                                       functionURLFunction: functionURLFunction.isEmpty ? nil : functionURLFunction,
                                                       connectionSendBuffer: sendBuffer,
                                                       idleTimeout: idleTimeout > 0 ? .seconds(idleTimeout) : nil)
        if !route.isEmpty {
            var routes: [String: String] = [:]
            for pair in route {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw ValidationError("--route takes ROUTE=FUNCTION, e.g. '$default=messages'.")
                }
                routes[parts[0]] = parts[1]
            }
            configuration.routes = routes
        }
        let logger = Logger(label: "lambda-standin")
        let standIn = LambdaStandIn(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: standIn)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let portFile = self.portFile
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await standIn.waitUntilListening()
            var runtimeAPIs: [String: String] = [:]
            for name in configuration.functionNames { runtimeAPIs[name] = standIn.runtimeAPI(for: name) }
            var description: [String: Any] = [
                "runtimeAPI": runtimeAPIs,
                "webSocketURL": standIn.webSocketURL.absoluteString,
                "managementEndpoint": standIn.managementEndpoint.absoluteString,
                "region": configuration.region,
                "stage": configuration.stage,
                "apiId": configuration.apiID,
                "accessKeyId": configuration.credentials.accessKeyID,
                "secretAccessKey": configuration.credentials.secretAccessKey,
            ]
            if configuration.functionURLFunction != nil { description["functionURL"] = standIn.functionURL.absoluteString }
            let json = try JSONSerialization.data(withJSONObject: description, options: [.sortedKeys, .withoutEscapingSlashes])
            if let portFile {
                try json.write(to: URL(fileURLWithPath: portFile), options: .atomic)
            }
            FileHandle.standardOutput.write(json + Data("\n".utf8))
            try await tasks.waitForAll()
        }
    }
}
