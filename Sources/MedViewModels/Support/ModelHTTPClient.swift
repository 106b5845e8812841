import AsyncHTTPClient

extension HTTPClient {
    /// The most HTTP/1.1 connections model calls open to one host at once: one per answer and one
    /// per safety triage, for up to 2,000 running answers (``MedViewCore/ChatConfiguration/maxRunningAnswers``'
    /// default) with room to spare. Admission control bounds the calls, not this pool.
    public static let modelConnectionsPerHost = 4096

    /// The client model calls go through unless a caller passes another: one for the process,
    /// like ``HTTPClient/shared``, but whose pool opens a connection for every concurrent request
    /// to an HTTP/1.1 provider (up to ``modelConnectionsPerHost``).
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
