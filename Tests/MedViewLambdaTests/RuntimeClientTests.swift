import Foundation
import MedViewServer
import MedViewTestSupport
import NIOCore
import Testing

@testable import MedViewLambda

/// The Lambda Runtime API client against a loopback server playing the Runtime API.
@Suite(.timeLimit(.minutes(1)))
struct RuntimeClientTests {
    static let nextHeaders: [(String, String)] = [
        ("content-type", "application/json"),
        ("Lambda-Runtime-Aws-Request-Id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
        ("Lambda-Runtime-Deadline-Ms", "1542409706888"),
        ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-2:123456789012:function:medview"),
        ("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"),
    ]

    @Test func nextReadsTheInvocationContextAndEvent() async throws {
        try await LoopbackHTTPServer.with([.init(status: 200, headers: Self.nextHeaders, steps: [.send(#"{"hello":"world"}"#)])]) { server in
            let client = try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)")
            let invocation = try await client.next()
            #expect(invocation.context.requestId == "8476a536-e9f4-11e8-9739-2dfe598c3fcd")
            #expect(invocation.context.deadline == Date(timeIntervalSince1970: 1_542_409_706.888))
            #expect(invocation.context.invokedFunctionARN == "arn:aws:lambda:us-east-2:123456789012:function:medview")
            #expect(invocation.context.traceId == "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
            #expect(String(buffer: invocation.event) == #"{"hello":"world"}"#)
            #expect(server.requests.map(\.method) == ["GET"])
            #expect(server.requests.map(\.uri) == ["/2018-06-01/runtime/invocation/next"])
        }
    }

    @Test func nextWithoutARequestIdIsATypedError() async throws {
        let headers = Self.nextHeaders.filter { $0.0 != "Lambda-Runtime-Aws-Request-Id" }
        try await LoopbackHTTPServer.with([.init(status: 200, headers: headers, steps: [.send("{}")])]) { server in
            let client = try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)")
            await #expect(throws: LambdaRuntimeError.missingHeader("Lambda-Runtime-Aws-Request-Id")) { _ = try await client.next() }
        }
    }

    @Test func aBadEndpointIsRefused() {
        #expect(throws: LambdaRuntimeError.invalidEndpoint("localhost")) { _ = try LambdaRuntimeClient(endpoint: "localhost") }
        #expect(throws: LambdaRuntimeError.invalidEndpoint(":9001")) { _ = try LambdaRuntimeClient(endpoint: ":9001") }
    }

    @Test func aBufferedResponseIsPostedWhole() async throws {
        try await LoopbackHTTPServer.with([.init(202, "")]) { server in
            let client = try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)")
            try await client.respond(requestId: "r-1", body: ByteBuffer(string: #"{"statusCode":200}"#))
            let request = try #require(server.requests.first)
            #expect(request.method == "POST")
            #expect(request.uri == "/2018-06-01/runtime/invocation/r-1/response")
            #expect(request.text == #"{"statusCode":200}"#)
            #expect(request.header("Lambda-Runtime-Function-Response-Mode") == nil)
        }
    }

    @Test func aStreamingResponseIsChunkedWithItsTrailersDeclared() async throws {
        try await LoopbackHTTPServer.with([.init(202, "")]) { server in
            let client = try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)")
            let failure = try await client.streamResponse(requestId: "r-2", contentType: "text/event-stream") { writer in
                try await writer.write("data: one\n\n")
                try await writer.write("data: two\n\n")
            }
            #expect(failure == nil)
            let request = try #require(server.requests.first)
            #expect(request.uri == "/2018-06-01/runtime/invocation/r-2/response")
            #expect(request.header("Lambda-Runtime-Function-Response-Mode") == "streaming")
            #expect(request.header("Transfer-Encoding")?.lowercased() == "chunked")
            #expect(request.header("Content-Length") == nil)
            #expect(request.header("Content-Type") == "text/event-stream")
            #expect(request.header("Trailer") == "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body")
            #expect(request.text == "data: one\n\ndata: two\n\n")
            #expect(request.trailers.isEmpty)
        }
    }

    @Test func aFailureAfterTheFirstByteTravelsInTheTrailers() async throws {
        try await LoopbackHTTPServer.with([.init(202, "")]) { server in
            let client = try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)")
            let failure = try await client.streamResponse(requestId: "r-3", contentType: "text/event-stream") { writer in
                try await writer.write("data: partial\n\n")
                throw LambdaErrorReport(type: "Function.StoreDown", message: "storage unavailable")
            }
            #expect(failure is LambdaErrorReport)
            let request = try #require(server.requests.first)
            #expect(request.text == "data: partial\n\n")
            let trailers = Dictionary(request.trailers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, _ in a })
            #expect(trailers["lambda-runtime-function-error-type"] == "Function.StoreDown")
            let body = try #require(trailers["lambda-runtime-function-error-body"].flatMap { Data(base64Encoded: $0) })
            let document = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
            #expect(document["errorType"] as? String == "Function.StoreDown")
            #expect(document["errorMessage"] as? String == "storage unavailable")
        }
    }

    @Test func errorAndInitErrorPostLambdasErrorDocument() async throws {
        try await LoopbackHTTPServer.with([.init(202, "")]) { server in
            let client = try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)")
            try await client.reportError(requestId: "r-4", LambdaErrorReport(type: "Function.UnrecognisedEvent", message: "not an event this function serves"))
            try await client.reportInitError(LambdaErrorReport(type: "Runtime.InitError", message: "set MEDVIEW_DATABASE_URL"))
            let requests = server.requests
            #expect(requests.map(\.uri) == ["/2018-06-01/runtime/invocation/r-4/error", "/2018-06-01/runtime/init/error"])
            #expect(requests.map { $0.header("Lambda-Runtime-Function-Error-Type") } == ["Function.UnrecognisedEvent", "Runtime.InitError"])
            #expect(requests[0].json?["errorType"] as? String == "Function.UnrecognisedEvent")
            #expect(requests[0].json?["errorMessage"] as? String == "not an event this function serves")
            #expect(requests[0].json?["stackTrace"] as? [String] == [])
            #expect(requests[1].json?["errorMessage"] as? String == "set MEDVIEW_DATABASE_URL")
        }
    }

    @Test func a500FromTheRuntimeAPIEndsTheLoop() async throws {
        try await LoopbackHTTPServer.with([.init(500, "")]) { server in
            let runtime = LambdaRuntime(client: try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)"), logger: .init(label: "test"))
            await #expect(throws: LambdaRuntimeError.nonRecoverable(path: "/2018-06-01/runtime/invocation/next")) {
                try await runtime.run(EchoHandler())
            }
        }
    }

    @Test func theLoopReportsAHandlerFailureAndSetsTheTraceId() async throws {
        try await LoopbackHTTPServer.with(respond: { request in
            switch request.path {
            case "/2018-06-01/runtime/invocation/next": .init(status: 200, headers: Self.nextHeaders, steps: [.send(#"{"fail":true}"#)])
            default: .init(202, "")
            }
        }) { server in
            let runtime = LambdaRuntime(client: try LambdaRuntimeClient(endpoint: "127.0.0.1:\(server.port)"), logger: .init(label: "test"))
            let invocation = try await runtime.client.next()
            try await runtime.serve(invocation, EchoHandler())
            #expect(ProcessInfo.processInfo.environment["_X_AMZN_TRACE_ID"] == Self.nextHeaders[4].1)
            let posted = try #require(server.requests.last)
            #expect(posted.uri == "/2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/error")
            #expect(posted.json?["errorType"] as? String == "Function.Refused")
        }
    }
}

/// Echoes the event, or fails before answering when it says `"fail": true`.
struct EchoHandler: LambdaHandler {
    func handle(_ invocation: LambdaInvocation, responder: LambdaResponder) async throws {
        if String(buffer: invocation.event).contains("\"fail\":true") {
            throw LambdaErrorReport(type: "Function.Refused", message: "asked to fail")
        }
        try await responder.send(invocation.event)
    }
}

/// What the function refuses to start with, reported to Lambda's `/init/error`.
@Suite(.timeLimit(.minutes(1)))
struct LambdaStartupTests {
    @Test("without PostgreSQL the function refuses to start, says why, and tells Lambda")
    func sqliteIsRefused() async throws {
        try await LoopbackHTTPServer.with([.init(202, "")]) { server in
            let directory = NSTemporaryDirectory() + "medview-lambda-start-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let configuration = ServerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory)
            await #expect(throws: LambdaStartupError.self) {
                _ = try await LambdaFunction.build(configuration: configuration, settings: LambdaSettings(runtimeAPI: "127.0.0.1:\(server.port)"))
            }
            let report = try #require(server.requests.first)
            #expect(report.uri == "/2018-06-01/runtime/init/error")
            #expect(report.json?["errorType"] as? String == "Runtime.InitError")
            #expect((report.json?["errorMessage"] as? String)?.contains("MEDVIEW_DATABASE_URL") == true)
            #expect(!FileManager.default.fileExists(atPath: directory + "/medview.sqlite"))
        }
    }
}
