import Foundation
import NIOCore

/// The reply of an API Gateway WebSocket route integration (`$connect` may refuse with a
/// non-2xx status, and must name the chosen subprotocol in `Sec-WebSocket-Protocol`).
struct GatewayResponse: Encodable, Sendable {
    var statusCode: Int
    var headers: [String: String]?
    var body: String?

    static let ok = GatewayResponse(statusCode: 200)

    var buffer: ByteBuffer {
        ByteBuffer(bytes: (try? JSONEncoder().encode(self)) ?? Data(#"{"statusCode":500}"#.utf8))
    }
}
