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
        if !configuration.isDevelopment, configuration.cognito == nil {
            throw StartupError(description: "environment 'production' needs Amazon Cognito: set --cognito-issuer and --cognito-client-id (or MEDVIEW_COGNITO_ISSUER and MEDVIEW_COGNITO_CLIENT_ID); refusing to start rather than accept development tokens.")
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
            // Development tokens in development mode only; production trusts Cognito alone.
            let devIssuer = configuration.isDevelopment ? try await DevTokenIssuer.load(dataDirectory: configuration.dataDirectory) : nil
            let verifier: any TokenVerifier
            if let devIssuer {
                verifier = devIssuer
            } else {
                verifier = try await cognitoVerifier(configuration: configuration, logger: logger, announce: announce)
            }
            let metrics = ServerMetrics()
            let chat = ChatService(model: model, store: store, configuration: configuration.chat, logger: logger, observer: metrics)
            chat.prepareSafety()
            let app = buildApplication(
                configuration: configuration,
                dependencies: AppDependencies(chat: chat, verifier: verifier, metrics: metrics, logger: logger)
            ) { port in
                announce("MedView Companion listening on http://\(configuration.host):\(port)")
                announce("  WebSocket: ws://\(configuration.host):\(port)/v1/ws   SSE: POST http://\(configuration.host):\(port)/v1/conversations/{id}/messages")
                if let devIssuer {
                    announce("  DEV MODE: development tokens are accepted (key: \(devIssuer.keyPath)). Not for production.")
                    announce("  Get a token: medview token --user alice --data-dir \(configuration.dataDirectory)")
                    if configuration.cognito != nil {
                        announce("  Cognito settings are ignored in development mode (use --environment production).")
                    }
                } else if let cognito = configuration.cognito {
                    announce("  PRODUCTION: Amazon Cognito tokens only (issuer \(cognito.issuer), app client \(cognito.clientId)); no development tokens.")
                    announce("  Page sign-in: \(cognito.domain.map { "Hosted UI at \($0)" } ?? "no Hosted UI domain set (--cognito-domain); the page cannot sign in")")
                }
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

    /// The Cognito verifier for production, with its keys fetched now. A key set that cannot be
    /// fetched at start-up is reported, not fatal: it is fetched again when the first token arrives.
    static func cognitoVerifier(configuration: ServerConfiguration, logger: Logger, announce: @Sendable (String) -> Void) async throws -> CognitoTokenVerifier {
        guard let settings = configuration.cognito else {
            throw StartupError(description: "Amazon Cognito is not configured.")
        }
        let verifier = CognitoTokenVerifier(settings: settings, logger: logger)
        do {
            let count = try await verifier.prefetch()
            logger.info("auth.cognito.ready", metadata: ["jwks.keys": "\(count)"])
        } catch {
            announce("  WARNING: could not fetch the Cognito signing keys from \(settings.jwksURL) yet; sign-ins fail until it answers.")
        }
        return verifier
    }
}
