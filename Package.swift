// swift-tools-version:6.1
import Foundation
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// Like llama.cpp's default native build: when the building machine has AVX2, FMA and F16C (and
/// AVX-512), the inference target is compiled for them (about twice as fast; AVX-512 adds about a
/// fifth to generation). MEDVIEW_PORTABLE=1 turns it off for binaries that must run on other
/// x86-64 CPUs.
let nativeInferenceFlags: [String] = {
    #if os(Linux) && arch(x86_64)
    guard ProcessInfo.processInfo.environment["MEDVIEW_PORTABLE"] == nil,
          let cpu = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          ["avx2", "fma", "f16c"].allSatisfy({ cpu.contains(" \($0)") }) else { return [] }
    // AVX-512 (with BW/DQ/VL) doubles the width of every vector operation in the products.
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy({ cpu.contains(" \($0)") }) {
        return ["-target-cpu", "skylake-avx512", "-D", "MEDVIEW_FMA", "-D", "MEDVIEW_AVX512"]
    }
    return ["-target-cpu", "haswell", "-D", "MEDVIEW_FMA"]
    #else
    return []
    #endif
}()

let package = Package(
    name: "MedView",
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .visionOS(.v2)],
    products: [
        .executable(name: "medview", targets: ["medview"]),
        .library(name: "MedViewProtocol", targets: ["MedViewProtocol"]),
        .library(name: "MedViewCore", targets: ["MedViewCore"]),
        .library(name: "MedViewServer", targets: ["MedViewServer"]),
        .library(name: "MedViewClient", targets: ["MedViewClient"]),
        .library(name: "MedViewLambda", targets: ["MedViewLambda"]),
        // The AWS Lambda custom runtime's entry point (provided.al2023 runs a file called `bootstrap`).
        .executable(name: "bootstrap", targets: ["MedViewBootstrap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "MedViewProtocol",
            swiftSettings: swiftSettings
        ),
        // The Swift SDK an app adds: the wire types and client-side packages only, nothing of the server.
        .target(
            name: "MedViewClient",
            dependencies: [
                "MedViewProtocol",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The terminal chat (`medview chat`): rendering and Ctrl-C handling on MedViewClient.
        .target(
            name: "MedViewChat",
            dependencies: ["MedViewClient", "MedViewProtocol"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewSafety",
            resources: [.copy("Data")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewAWS",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewCore",
            dependencies: [
                "MedViewProtocol",
                "MedViewSafety",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewModels",
            dependencies: [
                "MedViewCore",
                "MedViewProtocol",
                "MedViewAWS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewStandIns",
            dependencies: [
                "MedViewAWS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewLocalModel",
            dependencies: [
                "MedViewCore",
                "MedViewProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // Inference is unusable unoptimised (generic SIMD code is not specialised at -Onone),
            // so this one root target is always built with optimisation, debug builds included.
            swiftSettings: swiftSettings + [.unsafeFlags(["-O"] + nativeInferenceFlags)]
        ),
        .target(
            name: "MedViewStore",
            dependencies: [
                "MedViewCore",
                "MedViewAWS",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL adapter is its own target so that code needing only SQLite (the store
        // tests, tools) does not compile postgres-nio and its TLS stack.
        .target(
            name: "MedViewPostgres",
            dependencies: [
                "MedViewCore",
                "MedViewAWS",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewServer",
            dependencies: [
                "MedViewProtocol",
                "MedViewCore",
                "MedViewModels",
                "MedViewLocalModel",
                "MedViewSafety",
                "MedViewStore",
                "MedViewPostgres",
                "MedViewAWS",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("Web")],
            swiftSettings: swiftSettings
        ),
        // The serverless shape: the Lambda Runtime API client, the API Gateway WebSocket routes and
        // the function-URL SSE fallback, on the same engine as `medview serve` (docs/LAMBDA.md).
        .target(
            name: "MedViewLambda",
            dependencies: [
                "MedViewProtocol",
                "MedViewCore",
                "MedViewServer",
                "MedViewPostgres",
                "MedViewAWS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "MedViewBootstrap",
            dependencies: [
                "MedViewLambda",
                "MedViewServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MedViewBench",
            dependencies: [
                "MedViewProtocol",
                "MedViewClient",
                "MedViewServer",
                "MedViewCore",
                "MedViewStore",
                "MedViewPostgres",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "MedViewAWS",
                "MedViewModels",
                "MedViewLocalModel",
                "MedViewSafety",
                "MedViewLambda",
                "MedViewStandIns",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "medview",
            dependencies: [
                "MedViewServer",
                "MedViewStore",
                "MedViewBench",
                "MedViewAWS",
                "MedViewModels",
                "MedViewSafety",
                "MedViewStandIns",
                "MedViewLocalModel",
                "MedViewCore",
                "MedViewClient",
                "MedViewChat",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Support shared by the test targets (not a product): the recording model, the loopback HTTP server.
        .target(
            name: "MedViewTestSupport",
            dependencies: [
                "MedViewCore",
                "MedViewModels",
                "MedViewProtocol",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Tests/MedViewTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewCoreTests",
            dependencies: ["MedViewCore", "MedViewModels", "MedViewProtocol", "MedViewSafety", "MedViewTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewModelsTests",
            dependencies: [
                "MedViewModels",
                "MedViewCore",
                "MedViewProtocol",
                "MedViewAWS",
                "MedViewStandIns",
                "MedViewTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewLocalModelTests",
            dependencies: ["MedViewLocalModel", "MedViewCore", "MedViewProtocol", .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewSafetyTests",
            dependencies: ["MedViewSafety"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewAWSTests",
            dependencies: [
                "MedViewAWS",
                "MedViewTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewStoreTests",
            dependencies: [
                "MedViewStore",
                "MedViewPostgres",
                "MedViewCore",
                "MedViewAWS",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewClientTests",
            dependencies: [
                "MedViewClient",
                "MedViewTestSupport",
                "MedViewProtocol",
                "MedViewServer",
                "MedViewCore",
                "MedViewModels",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewStandInsTests",
            dependencies: [
                "MedViewStandIns",
                "MedViewAWS",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewServerTests",
            dependencies: [
                "MedViewServer",
                "MedViewProtocol",
                "MedViewCore",
                "MedViewModels",
                "MedViewStore",
                "MedViewPostgres",
                "MedViewTestSupport",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MedViewLambdaTests",
            dependencies: [
                "MedViewLambda",
                "MedViewServer",
                "MedViewProtocol",
                "MedViewCore",
                "MedViewModels",
                "MedViewPostgres",
                "MedViewAWS",
                "MedViewStandIns",
                "MedViewTestSupport",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
