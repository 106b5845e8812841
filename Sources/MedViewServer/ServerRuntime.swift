import Foundation
import Hummingbird
import Logging
import MedViewCore
import MedViewStore
import ServiceLifecycle

/// Runs `medview serve`: opens the store, picks the model and the token issuer, announces what it
/// runs with, and serves until SIGINT or SIGTERM (then drains running answers).
public enum ServerRuntime {
    /// Why the server refused to start.
    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The SQLite file inside the data directory.
    public static func databasePath(dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("medview.sqlite")
    }

    public static func run(configuration: ServerConfiguration, logger: Logger, announce: @escaping @Sendable (String) -> Void) async throws {
        guard configuration.isDevelopment else {
            throw StartupError(description: "environment 'production' needs a production token issuer (Amazon Cognito), which this build does not configure yet; refusing to start rather than accept development tokens.")
        }
        let model = try await ModelFactory.make(configuration.model, context: .init(
            environment: configuration.processEnvironment,
            dataDirectory: configuration.dataDirectory,
            logger: logger,
            announce: announce
        ))
        let store = try await SQLiteConversationStore.open(path: databasePath(dataDirectory: configuration.dataDirectory), logger: logger)
        do {
            let interrupted = try await store.failInterruptedTurns()
            if interrupted > 0 {
                logger.warning("startup.interrupted_streams", metadata: ["streams.count": "\(interrupted)"])
            }
            let issuer = try await DevTokenIssuer.load(dataDirectory: configuration.dataDirectory)
            let metrics = ServerMetrics()
            let chat = ChatService(model: model, store: store, configuration: configuration.chat, logger: logger, observer: metrics)
            chat.prepareSafety()
            let app = buildApplication(
                configuration: configuration,
                dependencies: AppDependencies(chat: chat, verifier: issuer, metrics: metrics, logger: logger)
            ) { port in
                announce("MedView Companion listening on http://\(configuration.host):\(port)")
                announce("  WebSocket: ws://\(configuration.host):\(port)/v1/ws   SSE: POST http://\(configuration.host):\(port)/v1/conversations/{id}/messages")
                announce("  DEV MODE: development tokens are accepted (key: \(issuer.keyPath)). Not for production.")
                announce("  Get a token: medview token --user alice --data-dir \(configuration.dataDirectory)")
                let d = model.descriptor
                if d.provider == "scripted" {
                    announce("  Model: scripted (a deterministic test model, not medical advice).")
                } else {
                    announce("  Model: \(d.provider):\(d.id)\(d.demo ? " (demo model, not medical-grade)" : "")")
                    if d.provider == "local" {
                        announce("  The local model is a small demo model running in-process: its answers are not medical advice. Configure a cloud model with --model for real use.")
                    }
                }
                announce("  Data: \(databasePath(dataDirectory: configuration.dataDirectory))")
            }
            // The drain comes last so that it shuts down first: answers end while clients are connected.
            let group = ServiceGroup(configuration: .init(
                services: [
                    .init(service: app),
                    .init(service: StreamDrainService(chat: chat, gracePeriod: configuration.limits.shutdownGracePeriod, logger: logger)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}
