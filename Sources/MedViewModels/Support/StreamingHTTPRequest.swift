import AsyncHTTPClient
import Foundation
import MedViewCore
import NIOCore
import NIOHTTP1

/// One POST to a streaming model API, before or after a ``RequestSigner`` added its credentials.
struct StreamingHTTPRequest: Sendable {
    var url: String
    var headers: HTTPHeaders
    var body: [UInt8]

    /// A JSON POST of `body` to `path` under `base` (trailing slashes of `base` dropped) that
    /// asks for `accept`.
    ///
    /// - Throws: an `invalidRequest` ``ModelError`` when `body` cannot be encoded.
    static func json(_ body: some Encodable, base: String, path: String, accept: String, provider: String) throws(ModelError) -> StreamingHTTPRequest {
        let bytes: [UInt8]
        do {
            bytes = Array(try JSONEncoder().encode(body))
        } catch {
            throw ModelError(kind: .invalidRequest, retryable: false, detail: "\(provider): the request could not be encoded")
        }
        return json(bytes: bytes, base: base, path: path, accept: accept)
    }

    /// A POST of the JSON body `bytes`, already encoded, to `path` under `base` (trailing slashes
    /// of `base` dropped) that asks for `accept`.
    static func json(bytes: [UInt8], base: String, path: String, accept: String) -> StreamingHTTPRequest {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: accept)
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return StreamingHTTPRequest(url: base + path, headers: headers, body: bytes)
    }

    /// The request as AsyncHTTPClient sends it.
    var clientRequest: HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }
}
