import Foundation
import MedViewAWS
import MedViewCore
import NIOHTTP1

/// Signs with AWS Signature Version 4 (header form), credentials from a cache that refreshes them.
struct SigV4RequestSigner: RequestSigner {
    /// The signing service name (`bedrock`), also the prefix of error details.
    var service: String
    var region: String
    var credentials: AWSCachedCredentials
    /// The signing time; tests pin it.
    var now: @Sendable () -> Date

    func sign(_ request: StreamingHTTPRequest) async throws(ModelError) -> StreamingHTTPRequest {
        guard let url = URL(string: request.url) else {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "\(service) endpoint is not a URL")
        }
        let identity: AWSCredentialIdentity
        do throws(AWSCredentialError) {
            identity = try await credentials.credentials()
        } catch {
            switch error {
            case .unreachable, .httpStatus: throw ModelError(kind: .unavailable, retryable: true, detail: error.description)
            default: throw ModelError(kind: .failed, retryable: false, detail: error.description)
            }
        }
        let headers = request.headers.map { SigV4Request.Header($0.name, $0.value) }
        let signed: SigV4SignedRequest
        do throws(SigV4Error) {
            let unsigned = try SigV4Request(method: "POST", url: url, headers: headers, payload: .bytes(request.body))
            signed = try SigV4Signer(service: service, region: region).sign(unsigned, credentials: identity.credentials, date: now())
        } catch {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "\(service) signing: \(error)")
        }
        var result = request
        result.headers = HTTPHeaders(signed.request.headers.map { ($0.name, $0.value) })
        return result
    }
}
