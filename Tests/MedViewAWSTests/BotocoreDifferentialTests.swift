import Foundation
import MedViewAWS
import Testing

/// Differential tests with botocore, the reference implementation: generated requests signed by
/// both signers, a real boto `bedrock-runtime` client's requests re-signed here, and event
/// streams written by our encoder decoded by botocore's `EventStreamBuffer`.
///
/// Everything is generated from fixed seeds and sent to `Tests/python/botocore_differential.py`
/// in one JSON file; one `python3` process answers for all cases. Skipped, with a message, when
/// `python3 -c "import botocore"` fails.
@Suite(
    .serialized,
    .enabled(if: Botocore.available, "python3 with botocore not found (pip install botocore): botocore differential tests skipped")
)
struct BotocoreDifferentialTests {
    static let headerCases = 1_200
    static let presignCases = 300
    static let bedrockCases = 24
    static let streams = 300
    static let corruptStreams = 100

    /// The one botocore run shared by the tests of this suite. It waits for a Python process
    /// without holding a thread of Swift's pool (a pool of two threads on a 2-core machine, which
    /// every other suite running meanwhile needs).
    static let run = Task { () -> Result<Run, Botocore.Failure> in
        do throws(Botocore.Failure) {
            return .success(try await Run.execute())
        } catch {
            return .failure(error)
        }
    }

    @Test("botocore's SigV4Auth agrees on 1,200 generated requests (canonical request, string to sign, signature, headers)")
    func headerForm() async throws {
        let run = try await Self.run.value.get()
        let cases = run.sigv4.filter { $0.mode == "header" }
        #expect(cases.count == Self.headerCases)
        var mismatches: [String] = []
        for ours in cases {
            let theirs = try #require(run.output.sigv4ByID[ours.id])
            let signed = ours.signed
            if signed.canonicalRequest != theirs.canonical_request || signed.stringToSign != theirs.string_to_sign || signed.signature != theirs.signature {
                mismatches.append("\(ours.id): ours\n\(signed.canonicalRequest)\nbotocore\n\(theirs.canonical_request)")
                continue
            }
            // The same final headers: originals plus X-Amz-Date, the token and Authorization.
            let our = signed.request.headers.map { [$0.name.lowercased(), $0.value] }.sorted { $0.lexicographicallyPrecedes($1) }
            let their = theirs.headers.map { [$0[0].lowercased(), $0[1]] }.sorted { $0.lexicographicallyPrecedes($1) }
            if our != their { mismatches.append("\(ours.id): headers \(our) vs \(their)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(cases.count) disagree; first: \(mismatches.first ?? "")")
    }

    @Test("botocore's SigV4QueryAuth agrees on 300 generated presigned URLs")
    func queryForm() async throws {
        let run = try await Self.run.value.get()
        let cases = run.sigv4.filter { $0.mode == "query" }
        #expect(cases.count == Self.presignCases)
        var mismatches: [String] = []
        for ours in cases {
            let theirs = try #require(run.output.sigv4ByID[ours.id])
            let signed = ours.signed
            if signed.canonicalRequest != theirs.canonical_request || signed.stringToSign != theirs.string_to_sign || signed.signature != theirs.signature {
                mismatches.append("\(ours.id): ours\n\(signed.canonicalRequest)\nbotocore\n\(theirs.canonical_request)")
                continue
            }
            // The same parameters in the final URL (botocore orders the X-Amz-* ones differently).
            let theirURL = try #require(URL(string: theirs.url))
            let their = try SigV4Request(method: "GET", url: theirURL).query.map { [$0.name, $0.value] }.sorted { $0.lexicographicallyPrecedes($1) }
            let our = signed.request.query.map { [$0.name, $0.value] }.sorted { $0.lexicographicallyPrecedes($1) }
            if our != their { mismatches.append("\(ours.id): query \(our) vs \(their)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(cases.count) disagree; first: \(mismatches.first ?? "")")
    }

    /// botocore's client adds `amz-sdk-invocation-id`, `amz-sdk-request` and `Content-Length`
    /// after signing; the request given to our signer has the URL (so the `Host`), the body and
    /// the headers botocore signed, as our Bedrock client will.
    @Test("a real bedrock-runtime client's ConverseStream requests get the same signature here (model ids encoded twice)")
    func bedrockClient() async throws {
        let run = try await Self.run.value.get()
        #expect(run.output.bedrock.count == Self.bedrockCases)
        for (input, theirs) in zip(run.input.bedrock, run.output.bedrock) {
            let authorization = try #require(theirs.headers.first { $0[0] == "Authorization" }?[1])
            let signedNames = try #require(authorization.components(separatedBy: "SignedHeaders=").last?.components(separatedBy: ",").first)
                .split(separator: ";").map(String.init)
            let headers = theirs.headers
                .filter { signedNames.contains($0[0].lowercased()) && $0[0].lowercased() != "host" }
                .map { SigV4Request.Header($0[0], $0[1]) }
            let request = try SigV4Request(
                method: theirs.method, url: try #require(URL(string: theirs.url)), headers: headers,
                payload: .bytes(try #require(base64(theirs.body)))
            )
            let credentials = SigV4Credentials(accessKeyID: input.access_key, secretAccessKey: input.secret_key, sessionToken: input.token)
            let signed = try SigV4Signer(service: "bedrock", region: input.region)
                .sign(request, credentials: credentials, date: Date(timeIntervalSince1970: TimeInterval(input.epoch)))
            #expect(signed.authorization == authorization, "model \(input.model_id)")
            if input.model_id.contains(":") {
                #expect(signed.canonicalRequest.contains("%253A"), "model id not encoded twice: \(signed.canonicalRequest)")
            }
        }
    }

    @Test("botocore decodes every stream our encoder writes to the same headers, payloads, lengths and CRCs")
    func eventStreams() async throws {
        let run = try await Self.run.value.get()
        var messages = 0
        var types = Set<UInt8>()
        for stream in run.streams where !stream.corrupt {
            let theirs = try #require(run.output.eventstreamByID[stream.id])
            #expect(theirs.error == nil, "\(stream.id): botocore raised \(theirs.error ?? "")")
            #expect(theirs.leftover == 0)
            let frames = try Self.frames(stream.bytes)
            try #require(theirs.messages.count == frames.count, "\(stream.id): \(theirs.messages.count) vs \(frames.count) messages")
            for (frame, their) in zip(frames, theirs.messages) {
                messages += 1
                frame.message.headers.forEach { types.insert($0.value.wireType) }
                #expect(their.total_length == frame.totalLength)
                #expect(their.headers_length == frame.headersLength)
                #expect(their.prelude_crc == frame.preludeCRC)
                #expect(their.message_crc == frame.messageCRC)
                #expect(their.payload == Data(frame.message.payload).base64EncodedString())
                #expect(their.headers == frame.message.headers.map(Self.botocoreForm), "\(stream.id)")
            }
        }
        #expect(types == Set(0...9))
        #expect(messages > 1_000)
    }

    @Test("a one-byte corruption is rejected by botocore and by our decoder, after the same messages")
    func corruptStreams() async throws {
        let run = try await Self.run.value.get()
        let corrupt = run.streams.filter(\.corrupt)
        #expect(corrupt.count == Self.corruptStreams)
        for stream in corrupt {
            let theirs = try #require(run.output.eventstreamByID[stream.id])
            var rng = SeededRandom(seed: 9)
            let ours = decodeInPieces(stream.bytes, pieces: { Int.random(in: 1...512, using: &$0) }, rng: &rng)
            #expect(theirs.error == "ChecksumMismatch", "\(stream.id)")
            #expect(["preludeChecksumMismatch", "messageChecksumMismatch"].contains(ours.error?.kind), "\(stream.id): \(String(describing: ours.error))")
            #expect(theirs.messages.count == ours.frames.count, "\(stream.id)")
        }
    }

    @Test("the botocore run is quick (under 20 s)")
    func quick() async throws {
        let run = try await Self.run.value.get()
        let messages = run.output.eventstream.reduce(0) { $0 + $1.messages.count }
        print("botocore \(run.output.botocore_version): \(run.output.sigv4.count) signed requests (\(Self.headerCases) header, \(Self.presignCases) presigned), \(run.output.bedrock.count) bedrock-runtime requests, \(run.output.eventstream.count) event streams (\(messages) messages decoded) in \(run.output.seconds) s")
        #expect(run.output.seconds < 20, "botocore_differential.py took \(run.output.seconds) s")
    }

    static func frames(_ bytes: [UInt8]) throws -> [EventStreamFrame] {
        var decoder = EventStreamDecoder()
        try decoder.append(bytes)
        var frames: [EventStreamFrame] = []
        while let frame = try decoder.nextFrame() { frames.append(frame) }
        try decoder.finish()
        return frames
    }

    /// A header as the script reports botocore's value: `[name, kind, value]`.
    static func botocoreForm(_ header: EventStreamHeader) -> [Botocore.Cell] {
        let name = Botocore.Cell.string(header.name)
        switch header.value {
        case .bool(let value): return [name, .string("bool"), .bool(value)]
        case .byte(let value): return [name, .string("int"), .string(String(value))]
        case .int16(let value): return [name, .string("int"), .string(String(value))]
        case .int32(let value): return [name, .string("int"), .string(String(value))]
        case .int64(let value): return [name, .string("int"), .string(String(value))]
        case .timestamp(let value): return [name, .string("int"), .string(String(value))]
        case .byteArray(let bytes): return [name, .string("bytes"), .string(Data(bytes).base64EncodedString())]
        case .uuid(let uuid): return [name, .string("bytes"), .string(withUnsafeBytes(of: uuid.uuid) { Data($0) }.base64EncodedString())]
        case .string(let value): return [name, .string("str"), .string(value)]
        }
    }
}

// MARK: - The run

extension BotocoreDifferentialTests {
    /// A generated SigV4 case with our signature of it.
    struct SignedCase {
        var id: String
        var mode: String
        var signed: SigV4SignedRequest
    }

    /// A generated event stream.
    struct Stream {
        var id: String
        var bytes: [UInt8]
        var corrupt: Bool
    }

    struct Run {
        var input: Botocore.Input
        var output: Botocore.Output
        var sigv4: [SignedCase]
        var streams: [Stream]

        static func execute() async throws(Botocore.Failure) -> Run {
            var rng = SeededRandom(seed: 0xB070C0)
            var input = Botocore.Input(sigv4: [], bedrock: [], eventstream: [])
            var sigv4: [SignedCase] = []
            do {
                for index in 0..<(BotocoreDifferentialTests.headerCases + BotocoreDifferentialTests.presignCases) {
                    let presign = index >= BotocoreDifferentialTests.headerCases
                    let generated = RequestGenerator.make(presign: presign, using: &rng)
                    let id = "\(presign ? "q" : "h")\(index)"
                    let signer = SigV4Signer(service: generated.service, region: generated.region)
                    let date = Date(timeIntervalSince1970: TimeInterval(generated.epoch))
                    let signed = presign
                        ? try signer.presign(generated.request, credentials: generated.credentials, date: date, expires: generated.expires)
                        : try signer.sign(generated.request, credentials: generated.credentials, date: date)
                    sigv4.append(SignedCase(id: id, mode: presign ? "query" : "header", signed: signed))
                    input.sigv4.append(generated.json(id: id, mode: presign ? "query" : "header"))
                }
            } catch {
                throw .generation("\(error)")
            }
            let models = [
                "anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-haiku-20240307-v1:0",
                "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "meta.llama3-8b-instruct-v1:0", "amazon.nova-micro-v1:0",
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
                "arn:aws:bedrock:eu-west-1:123456789012:provisioned-model/abc123", "custom model (v2)+test",
            ]
            for index in 0..<BotocoreDifferentialTests.bedrockCases {
                input.bedrock.append(Botocore.BedrockCase(
                    id: "b\(index)", model_id: models[index % models.count],
                    text: ["Hello", "Is ibuprofen safe with food? ሴ 😀", "", "multi\nline  text"][index % 4],
                    region: ["us-east-1", "us-west-2", "eu-central-1"][index % 3],
                    // Few distinct credential sets: each needs its own botocore client (slow to build).
                    access_key: "AKIDBEDROCK\(index % 3)",
                    secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\(index % 3)",
                    token: index % 2 == 0 ? "IQoJb3JpZ2luX2Vj/session+token==" : nil,
                    epoch: Int64.random(in: 1_500_000_000...2_000_000_000, using: &rng)
                ))
            }
            var streams: [Stream] = []
            do {
                let encoder = EventStreamEncoder()
                for index in 0..<BotocoreDifferentialTests.streams {
                    var messages = (0..<Int.random(in: 1...12, using: &rng)).map { _ in RandomMessages.message(using: &rng, maxPayload: 2_000) }
                    if index % 50 == 0 {
                        messages.append(EventStreamMessage(headers: [.init(name: ":event-type", value: .string("chunk"))], payload: RandomMessages.bytes(100_000, using: &rng)))
                    }
                    streams.append(Stream(id: "s\(index)", bytes: try encoder.encode(messages), corrupt: false))
                }
            } catch {
                throw .generation("\(error)")
            }
            for index in 0..<BotocoreDifferentialTests.corruptStreams {
                var bytes = streams[index].bytes
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                streams.append(Stream(id: "c\(index)", bytes: bytes, corrupt: true))
            }
            for (index, stream) in streams.enumerated() {
                let small = stream.bytes.count < 8_192
                input.eventstream.append(Botocore.StreamCase(
                    id: stream.id, bytes: Data(stream.bytes).base64EncodedString(), seed: UInt64(index),
                    min_piece: small ? 1 : 512, max_piece: small ? 64 : 8_192
                ))
            }
            let output = try await Botocore.run(input)
            return Run(input: input, output: output, sigv4: sigv4, streams: streams)
        }
    }
}

// MARK: - Request generation

/// Random requests that stress canonicalization: reserved and unicode path characters, dot
/// segments and empty segments, pre-encoded bytes (encoded again), repeated and empty query
/// parameters, repeated headers in mixed case with runs of spaces and tabs, bodies.
enum RequestGenerator {
    struct Generated {
        var request: SigV4Request
        var host: String
        var credentials: SigV4Credentials
        var service: String
        var region: String
        var epoch: Int64
        var expires: Int

        func json(id: String, mode: String) -> Botocore.SigV4Case {
            let body: [UInt8] = if case .bytes(let bytes) = request.payload { bytes } else { [] }
            return Botocore.SigV4Case(
                id: id, mode: mode, method: request.method, url: "https://\(host)\(request.target)",
                headers: request.headers.map { [$0.name, $0.value] }, body: Data(body).base64EncodedString(),
                service: service, region: region, access_key: credentials.accessKeyID, secret_key: credentials.secretAccessKey,
                token: credentials.sessionToken, epoch: epoch, expires: mode == "query" ? expires : nil
            )
        }
    }

    static let segments = [
        "a", "example", "model", "anthropic.claude-3-haiku-20240307-v1:0", "v1%3A0", "%2F", "%25", "100%", "a b",
        "é", "ሴ", "😀", "e\u{301}", "\u{301}", ".", "..", "", "!$&'()*+,;=", "@:", "~-_.", "[x]", "{y}", "|^`",
        "\"<>\\", "%E1%88%B4", "%zz", "converse-stream", "UPPER",
    ]
    static let queryNames = ["Param", "param", "a", "A", "b", "x-id", "ሴ", "sp ace", "plus+", "eq=", "amp&", "%41", "~._-", "Action", "list[]"]
    static let queryValues = ["", "1", "value", "Value", "a b", "+", "=", "&", "é", "ሴ😀", "%", "/path/", "a,b;c", "*", "x=y&z"]
    static let headerNames = ["X-Custom", "x-custom", "My-Header", "Content-Type", "X-Amz-Meta-Note", "Accept", "user-agent", "X-Amzn-Trace-Id", "Connection", "X-Amz-Target", "Expect", "x-amz-meta-ሴ-free"]
    static let headerValues = ["", "value", "  padded  ", "a   b\t\tc", "\tx", "application/json", "é ሴ", "v1,v2", "\"quoted   text\"", "100-continue", "AmazonBedrock.ConverseStream"]
    static let hosts = ["example.amazonaws.com", "bedrock-runtime.us-east-1.amazonaws.com", "localhost:8080", "127.0.0.1:9000"]
    static let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "post"]

    static func make(presign: Bool, using rng: inout SeededRandom) -> Generated {
        var path = Bool.random(using: &rng) && Int.random(in: 0..<5, using: &rng) == 0 ? "//" : "/"
        path += (0..<Int.random(in: 0...5, using: &rng)).map { _ in segments.randomElement(using: &rng)! }.joined(separator: "/")
        if Bool.random(using: &rng), path.last != "/" { path += "/" }

        var query: [SigV4Request.QueryItem] = []
        var names = queryNames.shuffled(using: &rng)
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            let name: String
            if presign {
                guard let unique = names.popLast() else { break }
                name = unique
            } else {
                name = Int.random(in: 0..<8, using: &rng) == 0 ? "" : queryNames.randomElement(using: &rng)!
            }
            query.append(.init(name, queryValues.randomElement(using: &rng)!))
        }

        let host = hosts.randomElement(using: &rng)!
        var headers = [SigV4Request.Header(Bool.random(using: &rng) ? "Host" : "host", host)]
        for _ in 0..<Int.random(in: 0...7, using: &rng) {
            var name = headerNames.randomElement(using: &rng)!
            if Bool.random(using: &rng) { name = name.uppercased() }
            headers.append(.init(name, headerValues.randomElement(using: &rng)!))
        }
        headers.shuffle(using: &rng)

        var body: [UInt8] = []
        if !presign {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: body = []
            case 1: body = Array(#"{"messages":[{"role":"user","content":[{"text":"héllo ሴ"}]}]}"#.utf8)
            case 2: body = RandomMessages.bytes(Int.random(in: 1...3_000, using: &rng), using: &rng)
            default: body = Array("Action=ListUsers&Version=2010-05-08".utf8)
            }
        }
        let token: String? = Int.random(in: 0..<3, using: &rng) == 0 ? "FQoGZXIvYXdzE" + word(60, using: &rng) + "/+=" : nil
        return Generated(
            request: SigV4Request(method: methods.randomElement(using: &rng)!, path: path, query: query, headers: headers, payload: .bytes(body)),
            host: host,
            credentials: SigV4Credentials(accessKeyID: "AKID" + word(16, using: &rng).uppercased(), secretAccessKey: word(40, using: &rng), sessionToken: token),
            service: ["bedrock", "execute-api", "service", "sts", "dynamodb"].randomElement(using: &rng)!,
            region: ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"].randomElement(using: &rng)!,
            epoch: Int64.random(in: 0...4_102_444_800, using: &rng),
            expires: Int.random(in: 1...604_800, using: &rng)
        )
    }

    static func word(_ count: Int, using rng: inout SeededRandom) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+")
        return String((0..<count).map { _ in alphabet.randomElement(using: &rng)! })
    }
}

// MARK: - Talking to Python

enum Botocore {
    /// `true` when `python3 -c "import botocore"` succeeds.
    static let available: Bool = succeedsBlocking(["-c", "import botocore"], timeout: 60)

    static let script = Vectors.repositoryRoot.appendingPathComponent("Tests/python/botocore_differential.py")

    enum Failure: Error, CustomStringConvertible {
        case generation(String)
        case python(String)

        var description: String {
            switch self {
            case .generation(let message): "generating cases failed: \(message)"
            case .python(let message): "botocore_differential.py failed: \(message)"
            }
        }
    }

    struct SigV4Case: Codable {
        var id, mode, method, url: String
        var headers: [[String]]
        var body, service, region, access_key, secret_key: String
        var token: String?
        var epoch: Int64
        var expires: Int?
    }

    struct BedrockCase: Codable {
        var id, model_id, text, region, access_key, secret_key: String
        var token: String?
        var epoch: Int64
    }

    struct StreamCase: Codable {
        var id, bytes: String
        var seed: UInt64
        var min_piece, max_piece: Int
    }

    struct Input: Codable {
        var sigv4: [SigV4Case]
        var bedrock: [BedrockCase]
        var eventstream: [StreamCase]
    }

    struct SigV4Result: Decodable {
        var id, canonical_request, string_to_sign, signature, url: String
        var headers: [[String]]
    }

    struct BedrockResult: Decodable {
        var id, method, url, body: String
        var headers: [[String]]
    }

    /// A JSON string or boolean in a header triple.
    enum Cell: Decodable, Hashable {
        case string(String), bool(Bool)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else {
                self = .string(try container.decode(String.self))
            }
        }
    }

    struct DecodedMessage: Decodable {
        var total_length, headers_length, prelude_crc, message_crc: UInt32
        var headers: [[Cell]]
        var payload: String
    }

    struct StreamResult: Decodable {
        var id: String
        var messages: [DecodedMessage]
        var error: String?
        var leftover: Int
    }

    struct Output: Decodable {
        var botocore_version: String
        var sigv4: [SigV4Result]
        var bedrock: [BedrockResult]
        var eventstream: [StreamResult]
        var seconds: Double

        var sigv4ByID: [String: SigV4Result] { Dictionary(uniqueKeysWithValues: sigv4.map { ($0.id, $0) }) }
        var eventstreamByID: [String: StreamResult] { Dictionary(uniqueKeysWithValues: eventstream.map { ($0.id, $0) }) }
    }

    /// Writes `input`, runs the script once, reads its answer.
    static func run(_ input: Input) async throws(Failure) -> Output {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("medview-botocore-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let inURL = folder.appendingPathComponent("cases.json"), outURL = folder.appendingPathComponent("results.json")
            try JSONEncoder().encode(input).write(to: inURL)
            let result = try await runPython([script.path, inURL.path, outURL.path], timeout: 120)
            guard result.status == 0 else { throw Failure.python("exit \(result.status): \(result.stderr.suffix(2_000))") }
            return try JSONDecoder().decode(Output.self, from: Data(contentsOf: outURL))
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .python("\(error)")
        }
    }

    /// Runs `python3 arguments…`, killing it after `timeout` seconds; waits between looks at the
    /// process without holding a thread of Swift's pool.
    static func runPython(_ arguments: [String], timeout: TimeInterval) async throws -> (status: Int32, stderr: String) {
        let (process, errors, errorHandle) = try launchPython(arguments)
        defer { try? errorHandle.close(); try? FileManager.default.removeItem(at: errors) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
                return (-1, "timed out after \(Int(timeout)) s")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        return (process.terminationStatus, stderr)
    }

    /// Whether `python3 arguments…` exits with status 0 within `timeout` seconds, waiting on the
    /// calling thread (for the suite's condition, checked before its tests run).
    static func succeedsBlocking(_ arguments: [String], timeout: TimeInterval) -> Bool {
        guard let (process, errors, errorHandle) = try? launchPython(arguments) else { return false }
        defer { try? errorHandle.close(); try? FileManager.default.removeItem(at: errors) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.terminate()
                process.waitUntilExit()
                return false
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return process.terminationStatus == 0
    }

    /// Starts `python3 arguments…` with its standard error going to a new temporary file.
    private static func launchPython(_ arguments: [String]) throws -> (Process, URL, FileHandle) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let errors = FileManager.default.temporaryDirectory.appendingPathComponent("medview-python-\(UUID().uuidString).err")
        guard FileManager.default.createFile(atPath: errors.path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
        let errorHandle: FileHandle
        do {
            errorHandle = try FileHandle(forWritingTo: errors)
        } catch {
            try? FileManager.default.removeItem(at: errors)
            throw error
        }
        process.standardError = errorHandle
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? errorHandle.close()
            try? FileManager.default.removeItem(at: errors)
            throw error
        }
        return (process, errors, errorHandle)
    }
}
