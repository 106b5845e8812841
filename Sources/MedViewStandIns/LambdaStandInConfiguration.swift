import Foundation
import MedViewAWS

/// How ``LambdaStandIn`` plays AWS: the API Gateway WebSocket API, its Management API, the Lambda
/// functions behind it (each with its own Runtime API) and a function URL in RESPONSE_STREAM mode.
///
/// Every function named in ``routes`` or ``functionURLFunction`` gets a Runtime API listener of its
/// own, as each Lambda function has its own `AWS_LAMBDA_RUNTIME_API`.
public struct LambdaStandInConfiguration: Sendable {
    /// The listening address (loopback).
    public var host: String
    /// The region in ARNs, domain names and the Management API's SigV4 scope.
    public var region: String
    /// The account id in function ARNs.
    public var accountID: String
    /// The API Gateway stage: the first path segment of the Management API (`/dev/@connections/…`).
    public var stage: String
    /// The API Gateway API id (`requestContext.apiId`, the domain name's first label).
    public var apiID: String
    /// The only keys the Management API accepts (SigV4, service `execute-api`).
    public var credentials: SigV4Credentials
    /// The function timeout: an invocation's deadline (`Lambda-Runtime-Deadline-Ms`) is this long
    /// after the runtime received it; past it the invocation fails with `Task.TimedOut`.
    public var functionTimeout: Duration
    /// The WebSocket API's integrations: route key (`$connect`, `$disconnect`, `$default`) to
    /// function name. A route without a function is accepted (connect) or dropped (message).
    public var routes: [String: String]
    /// The function serving the function URL (nil: no function URL listener).
    public var functionURLFunction: String?
    /// The largest WebSocket message either way (API Gateway: 128 KB). A larger client message
    /// closes the connection with 1009; a larger Management API post is refused with 413.
    public var messageSizeLimit: Int
    /// Bytes a connection may have queued for delivery before the Management API answers 429.
    public var connectionSendBuffer: Int
    /// A connection without client messages for this long is closed with 1001 (API Gateway:
    /// 10 minutes). nil: never.
    public var idleTimeout: Duration?
    /// How long API Gateway waits for the `$connect` integration (API Gateway: 29 s at most).
    public var integrationTimeout: Duration

    /// The route keys of the WebSocket API.
    public enum Route {
        /// The route invoked on the upgrade; its reply accepts or refuses the connection.
        public static let connect = "$connect"
        /// The route invoked after the connection closed.
        public static let disconnect = "$disconnect"
        /// The route every client message goes to.
        public static let `default` = "$default"
    }

    /// A configuration with one function (`handler`) serving all three routes and the function URL.
    public init(host: String = "127.0.0.1", region: String = "us-east-1", accountID: String = "123456789012",
                stage: String = "dev", apiID: String = "standin0ws",
                credentials: SigV4Credentials = LambdaStandInConfiguration.testCredentials,
                functionTimeout: Duration = .seconds(30),
                routes: [String: String] = [Route.connect: "handler", Route.disconnect: "handler", Route.default: "handler"],
                functionURLFunction: String? = "handler",
                messageSizeLimit: Int = 128 * 1024, connectionSendBuffer: Int = 4 * 1024 * 1024,
                idleTimeout: Duration? = .seconds(600), integrationTimeout: Duration = .seconds(29)) {
        self.host = host
        self.region = region
        self.accountID = accountID
        self.stage = stage
        self.apiID = apiID
        self.credentials = credentials
        self.functionTimeout = functionTimeout
        self.routes = routes
        self.functionURLFunction = functionURLFunction
        self.messageSizeLimit = messageSizeLimit
        self.connectionSendBuffer = connectionSendBuffer
        self.idleTimeout = idleTimeout
        self.integrationTimeout = integrationTimeout
    }

    /// The test keys (not real AWS keys).
    public static let testCredentials = SigV4Credentials(accessKeyID: "AKIDLAMBDASTANDIN", secretAccessKey: "standin/lambdaGATEWAYexampleKEY")

    /// Every function the configuration names, sorted.
    public var functionNames: [String] {
        Array(Set(routes.values).union(functionURLFunction.map { [$0] } ?? [])).sorted()
    }

    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
    public func functionARN(_ name: String) -> String {
        "arn:aws:lambda:\(region):\(accountID):function:\(name)"
    }

    /// The API's domain name as API Gateway reports it (`requestContext.domainName`).
    public var domainName: String { "\(apiID).execute-api.\(region).amazonaws.com" }
}
