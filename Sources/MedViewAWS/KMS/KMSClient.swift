import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Why a KMS call failed. No case carries key material or a secret.
public enum KMSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// KMS refused the ciphertext: altered, another key, or another encryption context.
    case invalidCiphertext
    /// KMS answered with an error (`__type`, HTTP status).
    case service(type: String, status: Int)
    /// No answer (network, timeout) or no credentials.
    case unreachable(String)
    /// The answer was not what KMS sends.
    case malformedResponse

    public var description: String {
        switch self {
        case .invalidCiphertext: "KMS: invalid ciphertext (altered, another key, or another encryption context)"
        case .service(let type, let status): "KMS: \(type) (HTTP \(status))"
        case .unreachable(let reason): "KMS unreachable: \(reason)"
        case .malformedResponse: "KMS: malformed response"
        }
    }
}

/// The AWS KMS calls envelope encryption needs (`GenerateDataKey`, `Decrypt`, `Encrypt`), over
/// the JSON 1.1 protocol (`X-Amz-Target: TrentService.<Op>`), signed with the project's SigV4 as
/// service `kms`.
public struct KMSClient: Sendable {
    public let region: String
    public let endpoint: URL
    let credentials: AWSCachedCredentials
    let httpClient: HTTPClient
    let timeout: TimeAmount

    public init(region: String, endpoint: URL, credentials: AWSCachedCredentials, httpClient: HTTPClient = .shared, timeout: TimeAmount = .seconds(10)) {
        self.region = region
        self.endpoint = endpoint
        self.credentials = credentials
        self.httpClient = httpClient
        self.timeout = timeout
    }

    /// The client the environment describes: region from `AWS_REGION`, `AWS_DEFAULT_REGION`, the
    /// key ARN, else `us-east-1`; endpoint from `AWS_ENDPOINT_URL_KMS`, else `AWS_ENDPOINT_URL`,
    /// else `https://kms.<region>.amazonaws.com`; credentials from the standard chain.
    public static func fromEnvironment(_ environment: [String: String], keyId: String, httpClient: HTTPClient = .shared) throws(KMSError) -> KMSClient {
        let value = { (name: String) -> String? in
            environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        let arnRegion: String? = keyId.hasPrefix("arn:") ? keyId.split(separator: ":", omittingEmptySubsequences: false).dropFirst(3).first.map(String.init) : nil
        let region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") ?? arnRegion ?? "us-east-1"
        let endpointText = value("AWS_ENDPOINT_URL_KMS") ?? value("AWS_ENDPOINT_URL") ?? "https://kms.\(region).amazonaws.com"
        guard let endpoint = URL(string: endpointText) else { throw .unreachable("the KMS endpoint is not a URL") }
        return KMSClient(region: region, endpoint: endpoint, credentials: AWSCachedCredentials(AWSCredentialChain.standard(environment: environment, httpClient: httpClient)), httpClient: httpClient)
    }

    /// A new AES-256 data key under `keyId`: its plaintext and its KMS ciphertext blob.
    public func generateDataKey(keyId: String, context: [String: String]) async throws(KMSError) -> (plaintext: Data, ciphertextBlob: Data) {
        let answer = try await call("GenerateDataKey", ["KeyId": keyId, "KeySpec": "AES_256", "EncryptionContext": context])
        guard let plaintext = (answer["Plaintext"] as? String).flatMap({ Data(base64Encoded: $0) }),
              let blob = (answer["CiphertextBlob"] as? String).flatMap({ Data(base64Encoded: $0) }) else { throw .malformedResponse }
        return (plaintext, blob)
    }

    /// The plaintext of `ciphertextBlob`, which must have been made under `keyId` with `context`.
    public func decrypt(ciphertextBlob: Data, keyId: String, context: [String: String]) async throws(KMSError) -> Data {
        let answer = try await call("Decrypt", ["CiphertextBlob": ciphertextBlob.base64EncodedString(), "KeyId": keyId, "EncryptionContext": context])
        guard let plaintext = (answer["Plaintext"] as? String).flatMap({ Data(base64Encoded: $0) }) else { throw .malformedResponse }
        return plaintext
    }

    /// `plaintext` (up to 4 KiB) encrypted under `keyId` with `context`.
    public func encrypt(plaintext: Data, keyId: String, context: [String: String]) async throws(KMSError) -> Data {
        let answer = try await call("Encrypt", ["Plaintext": plaintext.base64EncodedString(), "KeyId": keyId, "EncryptionContext": context])
        guard let blob = (answer["CiphertextBlob"] as? String).flatMap({ Data(base64Encoded: $0) }) else { throw .malformedResponse }
        return blob
    }

    /// Creates a symmetric key (tools and tests; production keys are made by infrastructure); returns its id.
    public func createKey(description: String) async throws(KMSError) -> String {
        let answer = try await call("CreateKey", ["Description": description, "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"])
        guard let metadata = answer["KeyMetadata"] as? [String: Any], let id = metadata["KeyId"] as? String else { throw .malformedResponse }
        return id
    }

    private func call(_ operation: String, _ body: [String: Any]) async throws(KMSError) -> [String: Any] {
        guard let payload = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]) else { throw .malformedResponse }
        let identity: AWSCredentialIdentity
        do throws(AWSCredentialError) {
            identity = try await credentials.credentials()
        } catch {
            throw .unreachable(error.description)
        }
        let signed: SigV4SignedRequest
        do throws(SigV4Error) {
            let unsigned = try SigV4Request(method: "POST", url: endpoint, headers: [
                .init("Content-Type", "application/x-amz-json-1.1"),
                .init("X-Amz-Target", "TrentService.\(operation)"),
            ], payload: .bytes(Array(payload)))
            signed = try SigV4Signer(service: "kms", region: region).sign(unsigned, credentials: identity.credentials, date: Date())
        } catch {
            throw .unreachable("signing failed")
        }
        var request = HTTPClientRequest(url: endpoint.absoluteString)
        request.method = .POST
        for header in signed.request.headers { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: payload))
        let status: Int
        let data: Data
        do {
            let response = try await httpClient.execute(request, timeout: timeout)
            status = Int(response.status.code)
            data = Data(try await response.body.collect(upTo: 256 * 1024).readableBytesView)
        } catch {
            throw .unreachable(error is HTTPClientError ? "connection failed or timed out" : "request failed")
        }
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        guard (200..<300).contains(status) else {
            let type = (object?["__type"] as? String).map { $0.split(separator: "#").last.map(String.init) ?? $0 } ?? "HTTP error"
            if type == "InvalidCiphertextException" { throw .invalidCiphertext }
            throw .service(type: type, status: status)
        }
        guard let object else { throw .malformedResponse }
        return object
    }
}
