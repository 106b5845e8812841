import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy on 127.0.0.1 that stands between a client and a live server and injects faults:
/// it cuts every open connection on demand, refuses all connections (the server seems down), or
/// refuses only WebSocket upgrades (a network that blocks WebSockets but lets HTTP through).
///
/// Plain blocking sockets, one thread per direction: small, and nothing in it is clever.
final class FaultProxy: @unchecked Sendable {
    enum Mode: Sendable, Equatable {
        /// Forward everything.
        case pass
        /// Accept and close at once: nothing gets through.
        case refuseAll
        /// Answer WebSocket upgrade requests with 403 and close; forward everything else.
        case refuseWebSocket
    }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var mode: Mode = .pass
    private var upstream: Int
    private var open: Set<Int32> = []
    private var stopped = false
    private(set) var webSocketUpgradesRefused = 0

    init(upstreamPort: Int) throws {
        upstream = upstreamPort
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw ProxyError("socket failed") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw ProxyError("bind/listen failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func setMode(_ mode: Mode) {
        lock.withLock { self.mode = mode }
    }

    /// Points the proxy at another server port (a restarted server).
    func setUpstream(port: Int) {
        lock.withLock { upstream = port }
    }

    /// Cuts every open connection at once, as a network drop would.
    func cutAll() {
        lock.withLock {
            for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    func stop() {
        lock.withLock { stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        cutAll()
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if lock.withLock({ stopped }) { return }
                continue
            }
            Thread { [self] in serve(client) }.start()
        }
    }

    private func serve(_ client: Int32) {
        let (mode, upstreamPort) = lock.withLock { (self.mode, self.upstream) }
        guard mode != .refuseAll else {
            close(client)
            return
        }
        track(client)
        defer { untrackAndClose(client) }
        // Read the request head to see what the connection is for.
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !Self.containsHeadEnd(head) {
            let n = read(client, &buffer, buffer.count)
            guard n > 0 else { return }
            head += buffer[0..<n]
        }
        if mode == .refuseWebSocket, String(decoding: head, as: UTF8.self).lowercased().contains("upgrade: websocket") {
            lock.withLock { webSocketUpgradesRefused += 1 }
            writeAll(client, Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        #if canImport(Glibc)
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let server = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard server >= 0 else { return }
        track(server)
        defer { untrackAndClose(server) }
        var address = Self.loopback(port: upstreamPort)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0, writeAll(server, head) else { return }
        let done = DispatchSemaphore(value: 0)
        Thread { [self] in
            pipe(from: server, to: client)
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
            done.signal()
        }.start()
        pipe(from: client, to: server)
        shutdown(client, Int32(SHUT_RDWR))
        shutdown(server, Int32(SHUT_RDWR))
        done.wait()
    }

    private func pipe(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(source, &buffer, buffer.count)
            guard n > 0, writeAll(destination, Array(buffer[0..<n])) else { return }
        }
    }

    @discardableResult
    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    private func track(_ fd: Int32) {
        lock.withLock { _ = open.insert(fd) }
    }

    private func untrackAndClose(_ fd: Int32) {
        lock.withLock { _ = open.remove(fd) }
        close(fd)
    }

    private static func containsHeadEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return true
        }
        return false
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

struct ProxyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
