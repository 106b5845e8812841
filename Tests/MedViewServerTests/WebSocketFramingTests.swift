import Foundation
import Testing

/// The WebSocket layer itself (RFC 6455), which the server now serves with its own channel
/// handler (issue 16, item 5): tested with raw sockets, frame by frame, so that nothing a client
/// library does for us hides what the server sends.
@Suite(.timeLimit(.minutes(2))) struct WebSocketFramingTests {
    /// A raw WebSocket on a raw socket: the handshake, masked frames out, frames in.
    struct RawWebSocket {
        let socket: RawSocket
        /// Bytes of `socket.received` before the first frame (the 101 response).
        let headEnd: Int

        static func open(_ server: LiveServer, user: String = "framing-user") async throws -> RawWebSocket {
            let socket = try RawSocket(port: server.port)
            let token = try await server.token(user)
            await socket.send(
                "GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
                "Authorization: Bearer \(token)\r\n\r\n"
            )
            let marker = Array("\r\n\r\n".utf8)
            var end: Int?
            await socket.wait(timeout: .seconds(30)) { s in
                end = s.received.indices.dropLast(3).first { Array(s.received[$0..<$0 + 4]) == marker }.map { $0 + 4 }
                return end != nil
            }
            let headEnd = try #require(end, "no upgrade response")
            let head = String(decoding: socket.received[..<headEnd], as: UTF8.self)
            #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
            // The offered compression is declined (docs/PROTOCOL.md, "No compression").
            #expect(!head.lowercased().contains("sec-websocket-extensions"))
            return RawWebSocket(socket: socket, headEnd: headEnd)
        }

        /// One frame as a client writes it: masked unless `masked` is false.
        static func frame(opcode: UInt8, fin: Bool = true, payload: [UInt8], masked: Bool = true, rsv1: Bool = false) -> [UInt8] {
            var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode]
            let maskBit: UInt8 = masked ? 0x80 : 0
            if payload.count < 126 {
                bytes.append(maskBit | UInt8(payload.count))
            } else {
                bytes.append(maskBit | 126)
                bytes += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
            }
            guard masked else { return bytes + payload }
            let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
            bytes += key
            bytes += payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
            return bytes
        }

        static func text(_ text: String, fin: Bool = true, continuation: Bool = false) -> [UInt8] {
            frame(opcode: continuation ? 0x0 : 0x1, fin: fin, payload: Array(text.utf8))
        }

        /// The server's frames so far (unmasked, as a server sends them).
        func frames() -> [(opcode: UInt8, payload: [UInt8])] {
            var frames: [(UInt8, [UInt8])] = []
            var bytes = Array(socket.received[headEnd...])[...]
            while bytes.count >= 2 {
                let start = bytes.startIndex
                let opcode = bytes[start] & 0x0F
                var length = Int(bytes[start + 1] & 0x7F)
                var offset = 2
                if length == 126 {
                    guard bytes.count >= 4 else { break }
                    length = Int(bytes[start + 2]) << 8 | Int(bytes[start + 3])
                    offset = 4
                } else if length == 127 {
                    break
                }
                guard bytes.count >= offset + length else { break }
                frames.append((opcode, Array(bytes[(start + offset)..<(start + offset + length)])))
                bytes = bytes.dropFirst(offset + length)
            }
            return frames
        }

        /// The JSON events in the server's text frames.
        func events() -> [[String: Any]] {
            frames().filter { $0.opcode == 0x1 }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any] }
        }

        /// The close frame's code, if one came.
        func closeCode() -> Int? {
            frames().first { $0.opcode == 0x8 }.flatMap { $0.payload.count >= 2 ? Int($0.payload[0]) << 8 | Int($0.payload[1]) : nil }
        }

        func waitFor(_ condition: @escaping (RawWebSocket) -> Bool) async -> Bool {
            await socket.wait(timeout: .seconds(10)) { _ in condition(self) }
        }
    }

    static func ackIds(_ events: [[String: Any]]) -> [String] {
        events.filter { $0["type"] as? String == "ack" }.compactMap { $0["id"] as? String }
    }

    @Test("a ping frame gets a pong with its bytes; a client's close gets the same code back and the connection closes")
    func pingAndClose() async throws {
        try await LiveServer.with { server in
            let ws = try await RawWebSocket.open(server)
            await ws.socket.send(RawWebSocket.frame(opcode: 0x9, payload: Array("are you there".utf8)))
            #expect(await ws.waitFor { $0.frames().contains { $0.opcode == 0xA } })
            #expect(ws.frames().first { $0.opcode == 0xA }.map { String(decoding: $0.payload, as: UTF8.self) } == "are you there")

            await ws.socket.send(RawWebSocket.frame(opcode: 0x8, payload: [0x0F, 0xA0]))  // 4000
            #expect(await ws.waitFor { $0.closeCode() != nil })
            #expect(ws.closeCode() == 4000)
            #expect(await ws.socket.waitForClose(timeout: .seconds(30)))
        }
    }

    @Test("forty commands written in one go are all answered, in order, though the server reads at most 16 ahead")
    func manyCommandsInOrder() async throws {
        try await LiveServer.with { server in
            let ws = try await RawWebSocket.open(server)
            let ids = (1...40).map { "p-\($0)" }
            await ws.socket.send(ids.flatMap { RawWebSocket.text(#"{"type":"ping","id":"\#($0)"}"#) })
            #expect(await ws.waitFor { Self.ackIds($0.events()).count >= 40 })
            #expect(Self.ackIds(ws.events()) == ids)
        }
    }

    @Test("a command in three fragments, with a ping between them, is one command")
    func fragmentsJoin() async throws {
        try await LiveServer.with { server in
            let ws = try await RawWebSocket.open(server)
            await ws.socket.send(
                RawWebSocket.text(#"{"type":"pi"#, fin: false)
                + RawWebSocket.frame(opcode: 0x9, payload: [1])
                + RawWebSocket.text(#"ng","id":"#, fin: false, continuation: true)
                + RawWebSocket.text(#""joined"}"#, continuation: true)
            )
            #expect(await ws.waitFor { !Self.ackIds($0.events()).isEmpty })
            #expect(Self.ackIds(ws.events()) == ["joined"])
            #expect(ws.events().count == 1)
        }
    }

    @Test("a frame a server must refuse closes the connection with 1002 and is not read: unmasked (RFC 6455 §5.1), or with a reserved bit set though no extension was negotiated (§5.2)", arguments: ["unmasked", "reserved bit"])
    func refusedFrameCloses(kind: String) async throws {
        try await LiveServer.with { server in
            let ws = try await RawWebSocket.open(server)
            let payload = Array(#"{"type":"ping","id":"x"}"#.utf8)
            await ws.socket.send(RawWebSocket.frame(opcode: 0x1, payload: payload, masked: kind != "unmasked", rsv1: kind == "reserved bit"))
            #expect(await ws.waitFor { $0.closeCode() != nil })
            #expect(ws.closeCode() == 1002)
            #expect(Self.ackIds(ws.events()).isEmpty)
        }
    }

    @Test("an upgrade asked for after another request on the same connection gets a 307 to the same path, and the connection closes")
    func lateUpgradeIsRedirected() async throws {
        try await LiveServer.with { server in
            let socket = try RawSocket(port: server.port)
            await socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await socket.response()?.status == 200)
            let token = try await server.token("framing-user")
            await socket.send(
                "GET /v1/ws?x=1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer \(token)\r\n\r\n"
            )
            #expect(await socket.waitForClose(timeout: .seconds(30)))
            let text = String(decoding: socket.received, as: UTF8.self).lowercased()
            #expect(text.contains("http/1.1 307"), "\(text.prefix(400))")
            #expect(text.contains("location: /v1/ws?x=1"))
            #expect(!text.contains("101 switching protocols"))
        }
    }

    @Test("a client that ends its side of the connection without a close frame is disconnected, and its place is freed")
    func halfClosedSocketIsClosed() async throws {
        try await LiveServer.with(configure: { $0.limits.maxConnectionsPerUser = 1 }) { server in
            let ws = try await RawWebSocket.open(server, user: "half-closer")
            await ws.socket.send(RawWebSocket.text(#"{"type":"ping","id":"before"}"#))
            #expect(await ws.waitFor { Self.ackIds($0.events()) == ["before"] })
            ws.socket.shutdownWrite()
            #expect(await ws.socket.waitForClose(timeout: .seconds(30)))
            // The one connection this user may have is free again (the close-out runs as the
            // channel closes, so allow it a moment).
            var answered: [String] = []
            for attempt in 0..<10 where answered != ["after"] {
                if attempt > 0 { try await Task.sleep(for: .milliseconds(200)) }
                let next = try await RawWebSocket.open(server, user: "half-closer")
                await next.socket.send(RawWebSocket.text(#"{"type":"ping","id":"after"}"#))
                _ = await next.socket.wait(timeout: .seconds(3)) { _ in !Self.ackIds(next.events()).isEmpty || next.closeCode() != nil }
                answered = Self.ackIds(next.events())
            }
            #expect(answered == ["after"])
        }
    }

    @Test("on shutdown an idle socket is closed with 1000")
    func shutdownCloses() async throws {
        try await LiveServer.with { server in
            let ws = try await RawWebSocket.open(server)
            await ws.socket.send(RawWebSocket.text(#"{"type":"ping","id":"before"}"#))
            #expect(await ws.waitFor { Self.ackIds($0.events()) == ["before"] })
            try await server.shutdown()
            #expect(await ws.waitFor { $0.closeCode() != nil })
            #expect(ws.closeCode() == 1000)
        }
    }
}
