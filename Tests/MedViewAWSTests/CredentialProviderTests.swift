import Foundation
import MedViewAWS
import Synchronization
import MedViewTestSupport
import Testing

/// A temporary directory removed when the test ends.
private final class TempDir: Sendable {
    let path = NSTemporaryDirectory() + "medview-creds-" + UUID().uuidString
    init() { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(atPath: file, contents: Data(text.utf8))
        return file
    }
}

private let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

private func credentialsJSON(_ id: String, expiration: String = "2030-01-01T00:00:00Z") -> String {
    #"{"Code":"Success","AccessKeyId":"\#(id)","SecretAccessKey":"\#(secret)","Token":"tok-\#(id)","Expiration":"\#(expiration)"}"#
}

@Suite struct EnvironmentAndProfileCredentialTests {
    @Test func environmentKeysWithSessionToken() async throws {
        let identity = try await EnvironmentCredentialProvider(environment: [
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "session",
        ]).resolve()
        #expect(identity?.credentials == SigV4Credentials(accessKeyID: "AKIDENV", secretAccessKey: secret, sessionToken: "session"))
        #expect(identity?.source == "environment")
        #expect(try await EnvironmentCredentialProvider(environment: [:]).resolve() == nil)
    }

    @Test func halfConfiguredEnvironmentIsATypedErrorWithoutTheSecret() async {
        await #expect(throws: AWSCredentialError.invalid(source: "environment", reason: "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")) {
            try await EnvironmentCredentialProvider(environment: ["AWS_SECRET_ACCESS_KEY": secret]).resolve()
        }
        do {
            _ = try await EnvironmentCredentialProvider(environment: ["AWS_SECRET_ACCESS_KEY": secret]).resolve()
        } catch {
            #expect(!"\(error)".contains(secret))
        }
    }

    @Test func sharedFilesSelectTheProfileAndCredentialsWinOverConfig() async throws {
        let dir = TempDir()
        let credentials = dir.write("credentials", """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = \(secret)

            # a comment
            [dev]
            aws_access_key_id=AKIDDEV
            aws_secret_access_key=\(secret)
            aws_session_token = devtoken
            """)
        let config = dir.write("config", """
            [default]
            region = eu-west-1
            [profile dev]
            region = us-west-2
            aws_access_key_id = AKIDFROMCONFIG
            s3 =
              max_concurrent_requests = 2
            [profile onlyconfig]
            aws_access_key_id = AKIDCONFIG
            aws_secret_access_key = \(secret)
            region = ap-south-1
            """)
        let base = ["AWS_SHARED_CREDENTIALS_FILE": credentials, "AWS_CONFIG_FILE": config, "HOME": dir.path]
        let defaultIdentity = try await ProfileCredentialProvider(environment: base).resolve()
        #expect(defaultIdentity?.credentials.accessKeyID == "AKIDDEFAULT")
        #expect(defaultIdentity?.source == "profile default")
        var dev = base
        dev["AWS_PROFILE"] = "dev"
        let devIdentity = try await ProfileCredentialProvider(environment: dev).resolve()
        #expect(devIdentity?.credentials == SigV4Credentials(accessKeyID: "AKIDDEV", secretAccessKey: secret, sessionToken: "devtoken"))
        #expect(AWSRegionResolver.region(environment: dev) == "us-west-2")
        #expect(AWSRegionResolver.region(environment: base) == "eu-west-1")
        var onlyConfig = base
        onlyConfig["AWS_PROFILE"] = "onlyconfig"
        #expect(try await ProfileCredentialProvider(environment: onlyConfig).resolve()?.credentials.accessKeyID == "AKIDCONFIG")
        var missing = base
        missing["AWS_PROFILE"] = "nope"
        await #expect(throws: AWSCredentialError.self) { try await ProfileCredentialProvider(environment: missing).resolve() }
    }

    @Test func missingFilesMeanNotConfigured() async throws {
        let dir = TempDir()
        #expect(try await ProfileCredentialProvider(environment: ["HOME": dir.path]).resolve() == nil)
    }

    @Test func regionOrderIsAWSRegionThenDefaultRegionThenConfig() {
        let dir = TempDir()
        let config = dir.write("config", "[default]\nregion = eu-central-1\n")
        let env = ["AWS_CONFIG_FILE": config, "HOME": dir.path]
        #expect(AWSRegionResolver.region(environment: env) == "eu-central-1")
        #expect(AWSRegionResolver.region(environment: env.merging(["AWS_DEFAULT_REGION": "us-east-2"]) { $1 }) == "us-east-2")
        #expect(AWSRegionResolver.region(environment: env.merging(["AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "ca-central-1"]) { $1 }) == "ca-central-1")
        #expect(AWSRegionResolver.region(environment: ["HOME": dir.path]) == nil)
    }
}

@Suite(.timeLimit(.minutes(1))) struct EndpointCredentialTests {
    @Test func containerRelativeURIWithAuthorizationToken() async throws {
        try await LoopbackHTTPServer.with(respond: { request in
            request.path == "/v2/credentials/abc" && request.header("authorization") == "ecs-token"
                ? .init(200, credentialsJSON("ASIAECS")) : .init(403)
        }) { server async throws -> Void in
            let url = server.baseURL
            let requests = { server.requests }
            let provider = ContainerCredentialProvider(environment: [
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ecs-token",
            ], timeout: .seconds(30), relativeBase: url)
            let identity = try await provider.resolve()
            #expect(identity?.credentials == SigV4Credentials(accessKeyID: "ASIAECS", secretAccessKey: secret, sessionToken: "tok-ASIAECS"))
            #expect(identity?.expiration == Date(timeIntervalSince1970: 1_893_456_000))
            #expect(requests().count == 1)
        }
    }

    @Test func containerFullURIReadsTheTokenFileAndRejectsRemotePlainHTTP() async throws {
        let dir = TempDir()
        let tokenFile = dir.write("token", "file-token\n")
        try await LoopbackHTTPServer.with(respond: { request in
            request.header("authorization") == "file-token" ? .init(200, credentialsJSON("ASIAEKS")) : .init(401)
        }) { server async throws -> Void in
            let url = server.baseURL
            let provider = ContainerCredentialProvider(environment: [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": url + "/creds",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored",
            ], timeout: .seconds(30))
            #expect(try await provider.resolve()?.credentials.accessKeyID == "ASIAEKS")
            let wrong = ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": url + "/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "bad"], timeout: .seconds(30))
            await #expect(throws: AWSCredentialError.httpStatus(source: "container", status: 401, code: nil)) { try await wrong.resolve() }
        }
        let remote = ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"])
        await #expect(throws: AWSCredentialError.self) { try await remote.resolve() }
        #expect(try await ContainerCredentialProvider(environment: [:]).resolve() == nil)
    }

    @Test func containerAnswerWithoutSecretIsInvalid() async throws {
        try await LoopbackHTTPServer.with(respond: { _ in .init(200, #"{"AccessKeyId":"ASIA"}"#) }) { server async throws -> Void in
            let url = server.baseURL
            let provider = ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": url + "/"], timeout: .seconds(30))
            await #expect(throws: AWSCredentialError.invalid(source: "container", reason: "the answer lacks AccessKeyId or SecretAccessKey")) { try await provider.resolve() }
        }
    }

    @Test func instanceMetadataUsesIMDSv2TokenForRoleAndKeys() async throws {
        try await LoopbackHTTPServer.with(respond: { request in
            switch (request.method, request.path) {
            case ("PUT", "/latest/api/token"):
                return request.header("x-aws-ec2-metadata-token-ttl-seconds") == "21600" ? .init(200, "imds-token") : .init(400)
            case ("GET", "/latest/meta-data/iam/security-credentials/"):
                return request.header("x-aws-ec2-metadata-token") == "imds-token" ? .init(200, "web-role\n") : .init(401)
            case ("GET", "/latest/meta-data/iam/security-credentials/web-role"):
                return request.header("x-aws-ec2-metadata-token") == "imds-token" ? .init(200, credentialsJSON("ASIAEC2")) : .init(401)
            default:
                return .init(404)
            }
        }) { server async throws -> Void in
            let url = server.baseURL
            let requests = { server.requests }
            // The 1 s default is for a real instance; a busy test machine may answer later.
            let identity = try await InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": url + "/"], timeout: .seconds(30)).resolve()
            #expect(identity?.credentials.accessKeyID == "ASIAEC2")
            #expect(identity?.source == "instance metadata")
            #expect(requests().map(\.method) == ["PUT", "GET", "GET"])
            let disabled = InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": url, "AWS_EC2_METADATA_DISABLED": "true"])
            #expect(try await disabled.resolve() == nil)
            #expect(requests().count == 3)
        }
    }

    @Test func instanceMetadataWithoutARoleIsAnErrorAndUnreachableIsNotConfigured() async throws {
        try await LoopbackHTTPServer.with(respond: { request in request.method == "PUT" ? .init(200, "t") : .init(404) }) { server async throws -> Void in
            let url = server.baseURL
            await #expect(throws: AWSCredentialError.invalid(source: "instance metadata", reason: "the instance has no IAM role")) {
                try await InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": url], timeout: .seconds(30)).resolve()
            }
        }
        try await withRefusingLoopbackPort { port async throws in
            let closed = InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)"])
            #expect(try await closed.resolve() == nil)
        }
    }

    @Test func webIdentityPostsTheTokenToSTSAndParsesTheXML() async throws {
        let dir = TempDir()
        let tokenFile = dir.write("jwt", "eyJhbGciOiJSUzI1NiJ9.payload.sig\n")
        try await LoopbackHTTPServer.with(respond: { request in
            let form = Dictionary(uniqueKeysWithValues: request.text.split(separator: "&").map {
                let kv = $0.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                return (kv[0], kv.count > 1 ? kv[1] : "")
            })
            guard form["Action"] == "AssumeRoleWithWebIdentity", form["RoleArn"] == "arn:aws:iam::123456789012:role/app",
                  form["WebIdentityToken"] == "eyJhbGciOiJSUzI1NiJ9.payload.sig", form["RoleSessionName"] == "pod-1"
            else {
                return .init(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad</Message></Error></ErrorResponse>")
            }
            return .init(200, """
                <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
                  <AssumeRoleWithWebIdentityResult>
                    <Credentials>
                      <SessionToken>FwoG&amp;token&#x2F;x</SessionToken>
                      <SecretAccessKey>\(secret)</SecretAccessKey>
                      <Expiration>2030-01-01T00:00:00Z</Expiration>
                      <AccessKeyId>ASIAWEB</AccessKeyId>
                    </Credentials>
                  </AssumeRoleWithWebIdentityResult>
                </AssumeRoleWithWebIdentityResponse>
                """)
        }) { server async throws -> Void in
            let url = server.baseURL
            var env = ["AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/app",
                       "AWS_ROLE_SESSION_NAME": "pod-1", "AWS_ENDPOINT_URL_STS": url, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"]
            let identity = try await WebIdentityCredentialProvider(environment: env).resolve()
            #expect(identity?.credentials == SigV4Credentials(accessKeyID: "ASIAWEB", secretAccessKey: secret, sessionToken: "FwoG&token/x"))
            #expect(identity?.expiration == Date(timeIntervalSince1970: 1_893_456_000))
            env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/other"
            await #expect(throws: AWSCredentialError.httpStatus(source: "web identity", status: 400, code: "InvalidIdentityToken")) {
                try await WebIdentityCredentialProvider(environment: env).resolve()
            }
        }
    }

    @Test func profileWithRoleAndTokenFileAssumesTheRoleThroughSTS() async throws {
        let dir = TempDir()
        let tokenFile = dir.write("jwt", "profile-jwt")
        try await LoopbackHTTPServer.with(respond: { request in
            request.text.contains("WebIdentityToken=profile-jwt") && request.text.contains("RoleSessionName=from-profile")
                ? .init(200, "<R><Credentials><AccessKeyId>ASIAPROF</AccessKeyId><SecretAccessKey>\(secret)</SecretAccessKey><SessionToken>t</SessionToken></Credentials></R>")
                : .init(400, "<Error><Code>InvalidIdentityToken</Code></Error>")
        }) { server async throws -> Void in
            let url = server.baseURL
            let config = dir.write("config", "[profile irsa]\nrole_arn = arn:aws:iam::1:role/app\nweb_identity_token_file = \(tokenFile)\nrole_session_name = from-profile\n")
            let env = ["AWS_CONFIG_FILE": config, "HOME": dir.path, "AWS_PROFILE": "irsa", "AWS_ENDPOINT_URL_STS": url]
            let identity = try await ProfileCredentialProvider(environment: env).resolve()
            #expect(identity?.credentials.accessKeyID == "ASIAPROF")
            #expect(identity?.source == "profile irsa web identity")
        }
    }

    @Test func stsEndpointOrder() {
        #expect(WebIdentityCredentialProvider.stsEndpoint(environment: ["AWS_ENDPOINT_URL_STS": "http://a", "AWS_ENDPOINT_URL": "http://b"]) == "http://a")
        #expect(WebIdentityCredentialProvider.stsEndpoint(environment: ["AWS_ENDPOINT_URL": "http://b", "AWS_REGION": "eu-west-3"]) == "http://b")
        #expect(WebIdentityCredentialProvider.stsEndpoint(environment: ["AWS_REGION": "eu-west-3", "HOME": "/nonexistent"]) == "https://sts.eu-west-3.amazonaws.com")
    }

    @Test func webIdentityNeedsBothSettings() async {
        await #expect(throws: AWSCredentialError.invalid(source: "web identity", reason: "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN must both be set")) {
            try await WebIdentityCredentialProvider(environment: ["AWS_ROLE_ARN": "arn:aws:iam::1:role/x"]).resolve()
        }
    }
}

/// A provider that counts calls and hands out credentials that expire `lifetime` after the fake clock's now.
private final class CountingProvider: AWSCredentialProvider {
    let name = "counting"
    let calls = Atomic<Int>(0)
    let clock: FakeClock
    let lifetime: TimeInterval
    let fail = Atomic<Bool>(false)
    init(clock: FakeClock, lifetime: TimeInterval) {
        self.clock = clock
        self.lifetime = lifetime
    }
    func resolve() async throws(AWSCredentialError) -> AWSCredentialIdentity? {
        let n = calls.add(1, ordering: .relaxed).newValue
        try? await Task.sleep(for: .milliseconds(20))
        if fail.load(ordering: .relaxed) { throw .unreachable(source: name, reason: "down") }
        return AWSCredentialIdentity(credentials: SigV4Credentials(accessKeyID: "ASIA\(n)", secretAccessKey: secret, sessionToken: "t"),
                                     expiration: clock.now().addingTimeInterval(lifetime), source: name)
    }
}

private final class FakeClock: Sendable {
    let seconds = Atomic<Int>(1_700_000_000)
    func now() -> Date { Date(timeIntervalSince1970: TimeInterval(seconds.load(ordering: .relaxed))) }
    func advance(_ by: Int) { seconds.add(by, ordering: .relaxed) }
}

@Suite struct CredentialCacheAndChainTests {
    @Test func cachedUntilFiveMinutesBeforeExpiryThenRefreshed() async throws {
        let clock = FakeClock()
        let provider = CountingProvider(clock: clock, lifetime: 3600)
        let cache = AWSCachedCredentials(provider, now: { clock.now() })
        #expect(try await cache.credentials().credentials.accessKeyID == "ASIA1")
        clock.advance(3600 - 301)
        #expect(try await cache.credentials().credentials.accessKeyID == "ASIA1")
        clock.advance(2) // 299 s left: inside the 5-minute window
        #expect(try await cache.credentials().credentials.accessKeyID == "ASIA2")
        #expect(provider.calls.load(ordering: .relaxed) == 2)
    }

    @Test func concurrentCallersShareOneFetch() async throws {
        let clock = FakeClock()
        let provider = CountingProvider(clock: clock, lifetime: 3600)
        let cache = AWSCachedCredentials(provider, now: { clock.now() })
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<25 { group.addTask { try await cache.credentials().credentials.accessKeyID } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(ids == ["ASIA1"])
        #expect(provider.calls.load(ordering: .relaxed) == 1)
    }

    @Test func failedRefreshKeepsStillValidCredentialsButNotExpiredOnes() async throws {
        let clock = FakeClock()
        let provider = CountingProvider(clock: clock, lifetime: 600)
        let cache = AWSCachedCredentials(provider, now: { clock.now() })
        _ = try await cache.credentials()
        provider.fail.store(true, ordering: .relaxed)
        clock.advance(400) // inside the refresh window, still valid
        #expect(try await cache.credentials().credentials.accessKeyID == "ASIA1")
        clock.advance(300) // expired
        await #expect(throws: AWSCredentialError.unreachable(source: "counting", reason: "down")) { try await cache.credentials() }
    }

    @Test func chainTakesTheFirstConfiguredSourceInOrder() async throws {
        let dir = TempDir()
        let credentials = dir.write("credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = \(secret)\n")
        var env = ["AWS_SHARED_CREDENTIALS_FILE": credentials, "HOME": dir.path, "AWS_EC2_METADATA_DISABLED": "true"]
        #expect(try await AWSCredentialChain.standard(environment: env).require().credentials.accessKeyID == "AKIDFILE")
        env["AWS_ACCESS_KEY_ID"] = "AKIDENV"
        env["AWS_SECRET_ACCESS_KEY"] = secret
        #expect(try await AWSCredentialChain.standard(environment: env).require().credentials.accessKeyID == "AKIDENV")
    }

    @Test func emptyChainNamesEverySourceItTried() async {
        let dir = TempDir()
        let env = ["HOME": dir.path, "AWS_EC2_METADATA_DISABLED": "true"]
        await #expect(throws: AWSCredentialError.notFound(tried: ["environment", "web identity", "profile", "container", "instance metadata"])) {
            try await AWSCredentialChain.standard(environment: env).require()
        }
    }

    @Test func identityDescriptionRedactsSecrets() {
        let identity = AWSCredentialIdentity(credentials: SigV4Credentials(accessKeyID: "AKID", secretAccessKey: secret, sessionToken: "tok"), source: "environment")
        #expect(!identity.description.contains(secret))
        #expect(!"\(identity.credentials)".contains("tok\""))
    }
}
