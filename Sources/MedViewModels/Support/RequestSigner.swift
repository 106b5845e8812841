import MedViewCore

/// Adds credentials to a model request just before each attempt is sent.
///
/// Signing happens once per attempt, inside the attempt's response timeout, so a signature is
/// never older than its request and a slow credential source counts as a slow response.
protocol RequestSigner: Sendable {
    /// `request` with its credentials.
    ///
    /// - Throws: a ``ModelError``: retryable when the credentials could not be fetched for now,
    ///   not retryable when they can never sign this request.
    func sign(_ request: StreamingHTTPRequest) async throws(ModelError) -> StreamingHTTPRequest
}
