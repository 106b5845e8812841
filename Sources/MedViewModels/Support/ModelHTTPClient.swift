import AsyncHTTPClient

/// The HTTP client a model's calls go through: ``ModelHTTP1Client`` (the default) or
/// AsyncHTTPClient.
public struct ModelHTTP: Sendable {
    enum Backend: Sendable {
        case lean(ModelHTTP1Client)
        case asyncHTTPClient(HTTPClient)
    }

    let backend: Backend

    /// The process's lean HTTP/1.1 client (``ModelHTTP1Client/shared``): the default.
    public static let models = ModelHTTP(backend: .lean(.shared))

    /// Calls through `client` (``HTTPClient/models`` is configured for model calls).
    public static func asyncHTTPClient(_ client: HTTPClient = .models) -> ModelHTTP {
        ModelHTTP(backend: .asyncHTTPClient(client))
    }

    /// Calls through `client`.
    public static func lean(_ client: ModelHTTP1Client) -> ModelHTTP {
        ModelHTTP(backend: .lean(client))
    }

    /// The client named by `MEDVIEW_MODEL_HTTP_CLIENT`: `lean` (or unset) or `asynchttpclient`.
    public static func named(_ name: String?) -> ModelHTTP? {
        switch name?.lowercased() {
        case nil, "", "lean": .models
        case "asynchttpclient": .asyncHTTPClient()
        default: nil
        }
    }

    /// Which client this is, for logs.
    public var name: String {
        switch backend {
        case .lean: "lean"
        case .asyncHTTPClient: "asynchttpclient"
        }
    }
}

extension HTTPClient {
    /// The most HTTP/1.1 connections model calls open to one host at once: one per answer and one
    /// per safety triage, for up to 2,000 running answers (``MedViewCore/ChatConfiguration/maxRunningAnswers``'
    /// default) with room to spare. Admission control bounds the calls, not this pool.
    public static let modelConnectionsPerHost = 4096

    /// The AsyncHTTPClient model calls go through when it is chosen (``ModelHTTP/asyncHTTPClient(_:)``):
    /// one for the process, like ``HTTPClient/shared``, but whose pool opens a connection for every
    /// concurrent request to an HTTP/1.1 provider (up to ``modelConnectionsPerHost``).
    ///
    /// The shared client keeps at most 8 connections per host and queues further requests until
    /// one of them ends: with a model that takes seconds to answer, the ninth patient's request
    /// waited for another patient's whole answer before it was even sent (30 patients at once
    /// behind a model that streams for 2 s: first chunk p50 2.1 s, p90 6.1 s). Over HTTPS a
    /// provider that offers HTTP/2 multiplexes its requests on one connection either way.
    /// Redirects are not followed and bodies are not decompressed: a model API answers directly.
    /// No tracing span is started per request (the service bootstraps no tracer).
    public static let models: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: modelConnectionsPerHost)
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}
