#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import MedViewTestSupport

/// A plain TCP connection that writes exactly the bytes it is given (no HTTP client library
/// in the way to refuse a bad request) and reads without blocking a thread: tests poll it.
final class RawSocket: @unchecked Sendable {
    private let fd: Int32
    /// Everything received so far.
    private(set) var received: [UInt8] = []
    /// Whether the server closed the connection (end of stream, or a reset).
    private(set) var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestTimeout(description: "socket() failed: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw TestTimeout(description: "connect() failed: \(errno)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { Glibc.close(fd) }

    /// Writes all of `text` (waiting while the socket buffer is full); `false` if the peer went away.
    @discardableResult
    func send(_ text: String) async -> Bool {
        await send(Array(text.utf8))
    }

    @discardableResult
    func send(_ bytes: [UInt8]) async -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
            } else if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                try? await Task.sleep(for: .milliseconds(5))
            } else {
                return false
            }
        }
        return true
    }

    /// Ends this side of the connection (TCP FIN) and keeps reading.
    func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads what has arrived, without waiting.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !closed {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received += buffer[0..<n]
            } else if n == 0 {
                closed = true
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else {
                closed = true
            }
        }
    }

    /// Waits until `condition` holds for what was received (or the connection closed), or
    /// `timeout` passes. Returns whether the condition held.
    @discardableResult
    func wait(timeout: Duration, until condition: (RawSocket) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            drain()
            if condition(self) { return true }
            if closed || ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits for the server to close the connection; `true` if it did within `timeout`.
    func waitForClose(timeout: Duration) async -> Bool {
        await wait(timeout: timeout) { $0.closed }
        return closed
    }

    /// Waits for one whole response (head, and a body of its Content-Length).
    func response(timeout: Duration = .seconds(30)) async -> RawResponse? {
        await wait(timeout: timeout) { RawResponse(parsing: $0.received) != nil }
        return RawResponse(parsing: received)
    }
}

/// A response as read off the wire.
struct RawResponse {
    var status: Int
    var headers: [(String, String)]
    var body: Data

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The `error.code` of a JSON error body.
    var errorCode: String? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let error = object["error"] as? [String: Any] else { return nil }
        return error["code"] as? String
    }

    /// The first complete response in `bytes`, or `nil` if it has not all arrived.
    init?(parsing bytes: [UInt8]) {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else { return nil }
        let head = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        let headers = head.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? 0
        let bodyStart = end + 4
        // A 101 has no body; anything after it is WebSocket frames.
        let bodyLength = status == 101 ? 0 : length
        guard bytes.count >= bodyStart + bodyLength else { return nil }
        self.status = status
        self.headers = headers
        self.body = Data(bytes[bodyStart..<bodyStart + bodyLength])
    }
}
