import AsyncHTTPClient
import Foundation

/// Tries credential sources in order; the first one configured wins.
///
/// A source that is not configured is skipped; a source that is configured but fails stops the
/// chain with its error (as the AWS SDKs do: a broken container endpoint must not silently fall
/// through to other keys).
public struct AWSCredentialChain: AWSCredentialProvider {
    public let name = "chain"
    /// The sources, in the order they are tried.
    public let providers: [any AWSCredentialProvider]

    /// A chain of `providers`.
    public init(_ providers: [any AWSCredentialProvider]) {
        self.providers = providers
    }

    /// The default chain, in the AWS SDKs' order: environment variables, web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), the shared `credentials`/`config`
    /// files, container credentials (ECS), instance metadata (EC2 IMDSv2).
    public static func standard(environment: [String: String], httpClient: HTTPClient = .shared) -> AWSCredentialChain {
        AWSCredentialChain([
            EnvironmentCredentialProvider(environment: environment),
            WebIdentityCredentialProvider(environment: environment, httpClient: httpClient),
            ProfileCredentialProvider(environment: environment, httpClient: httpClient),
            ContainerCredentialProvider(environment: environment, httpClient: httpClient),
            InstanceMetadataCredentialProvider(environment: environment, httpClient: httpClient),
        ])
    }

    public func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity? {
        for provider in providers {
            if let identity = try await provider.resolve() { return identity }
        }
        return nil
    }

    /// The credentials, or ``AWSCredentialError/notFound(tried:)`` naming every source tried.
    public func require() async throws(AWSCredentialError) -> AWSCredentialIdentity {
        guard let identity = try await resolve() else { throw .notFound(tried: providers.map(\.name)) }
        return identity
    }
}

/// Caches the credentials of a provider and refreshes them before they expire.
///
/// Credentials without an expiration are kept for good. Temporary ones are fetched again once
/// they are within `refreshWindow` of expiring (5 minutes by default, as the AWS SDKs do); all
/// callers that ask while a fetch runs wait for that one fetch. If a refresh fails while the old
/// credentials are still valid, the old ones are used and the next call tries again.
public actor AWSCachedCredentials {
    private let provider: any AWSCredentialProvider
    private let refreshWindow: TimeInterval
    private let now: @Sendable () -> Date
    private var cached: AWSCredentialIdentity?
    private var inFlight: Task<AWSCredentialIdentity, any Error>?
    /// How many times the provider was asked (for tests and logs).
    public private(set) var fetchCount = 0

    /// Caches `provider`.
    public init(_ provider: any AWSCredentialProvider, refreshWindow: Duration = .seconds(300), now: @escaping @Sendable () -> Date = { Date() }) {
        self.provider = provider
        self.refreshWindow = Double(refreshWindow.components.seconds) + Double(refreshWindow.components.attoseconds) / 1e18
        self.now = now
    }

    /// Valid credentials, fetched or refreshed when needed.
    /// - Throws: ``AWSCredentialError`` from the provider, or `notFound` if it has none.
    public func credentials() async throws(AWSCredentialError) -> AWSCredentialIdentity {
        let time = now()
        if let cached, !needsRefresh(cached, at: time) { return cached }
        let task: Task<AWSCredentialIdentity, any Error>
        if let inFlight {
            task = inFlight
        } else {
            let provider = self.provider
            task = Task {
                guard let identity = try await provider.resolve() else {
                    throw AWSCredentialError.notFound(tried: (provider as? AWSCredentialChain)?.providers.map(\.name) ?? [provider.name])
                }
                return identity
            }
            inFlight = task
            fetchCount += 1
        }
        do {
            let identity = try await task.value
            if inFlight == task { inFlight = nil }
            cached = identity
            return identity
        } catch {
            if inFlight == task { inFlight = nil }
            if let cached, let expiration = cached.expiration, expiration > now() { return cached }
            if let error = error as? AWSCredentialError { throw error }
            throw .unreachable(source: provider.name, reason: "cancelled")
        }
    }

    private func needsRefresh(_ identity: AWSCredentialIdentity, at time: Date) -> Bool {
        guard let expiration = identity.expiration else { return false }
        return expiration.timeIntervalSince(time) <= refreshWindow
    }
}
