import Foundation
import Logging
import MedViewLambda
import MedViewServer
import CoreMetrics

/// `bootstrap`: the Lambda custom runtime (provided.al2023) serving MedView's WebSocket routes
/// and SSE function URL. Configured by the same environment variables as `medview serve`, plus
/// those of ``LambdaSettings`` (docs/LAMBDA.md).
@main
struct Bootstrap {
    static func main() async {
        let environment = ProcessInfo.processInfo.environment
        let configuration: ServerConfiguration
        let settings: LambdaSettings
        do {
            configuration = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: environment)
            settings = try LambdaSettings.resolve(environment: environment)
        } catch {
            await fail("\(error)", runtimeAPI: environment["AWS_LAMBDA_RUNTIME_API"])
        }
        // CloudWatch takes one JSON object per line; EMF records go the same way.
        let writer = LineWriter()
        let level = configuration.logLevel
        LoggingSystem.bootstrap({ label, provider in
            JSONLogHandler(label: label, level: level, writer: writer, metadataProvider: provider)
        }, metadataProvider: LogContext.metadataProvider)
        let o = configuration.observability
        let emf = o.metricsEnabled ? EMFMetrics(namespace: o.namespace, service: o.service, interval: o.emfInterval, write: { writer.write($0) }) : nil
        let metrics = ServerMetrics(enabled: o.metricsEnabled, emf: emf)
        MetricsSystem.bootstrap(metrics.factory)
        do {
            let function = try await LambdaFunction.build(configuration: configuration, settings: settings, dependencies: .init(metrics: metrics, logger: Logger(label: "medview.lambda")))
            try await function.run()
        } catch {
            // `build` has reported a start-up failure to /init/error already.
            FileHandle.standardError.write(Data("bootstrap: \(error)\n".utf8))
            exit(1)
        }
    }

    static func fail(_ message: String, runtimeAPI: String?) async -> Never {
        FileHandle.standardError.write(Data("bootstrap: \(message)\n".utf8))
        await LambdaFunction.reportInitFailure(runtimeAPI: runtimeAPI, message: message)
        exit(1)
    }
}
