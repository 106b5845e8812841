import MedViewServer
import Testing

@Suite struct ServerConfigurationTests {
    @Test("the HTTP layer's limits, the allowed origins and the network switch: defaults, both sources, bounds")
    func httpLayerSettings() throws {
        let defaults = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [:])
        #expect(defaults.http == HTTPConnectionLimits())
        #expect(defaults.http.headerTimeout == .seconds(10))
        #expect(defaults.http.idleTimeout == .seconds(75))
        #expect(defaults.http.maxRequestLineBytes == 8192)
        #expect(defaults.http.maxHeaderCount == 100)
        #expect(defaults.http.maxHeaderBytes == 32768)
        #expect(defaults.http.maxUnauthenticatedConnections == 256)
        #expect(defaults.allowedOrigins == [])
        #expect(!defaults.allowDevTokensOnNetwork)

        var a = ServeArguments()
        a.httpHeaderTimeoutSeconds = 3
        a.maxHeaderCount = 50
        a.allowedOrigins = "https://App.Example.com/, http://localhost:3000"
        a.allowDevTokensOnNetwork = true
        let env = [
            "MEDVIEW_HTTP_HEADER_TIMEOUT_SECONDS": "9", "MEDVIEW_HTTP_IDLE_TIMEOUT_SECONDS": "30",
            "MEDVIEW_MAX_REQUEST_LINE_BYTES": "4096", "MEDVIEW_MAX_HEADER_BYTES": "16384",
            "MEDVIEW_MAX_UNAUTHENTICATED_CONNECTIONS": "100", "MEDVIEW_ALLOWED_ORIGINS": "https://ignored.example",
        ]
        let c = try ServerConfiguration.resolve(arguments: a, environment: env)
        #expect(c.http == HTTPConnectionLimits(headerTimeout: .seconds(3), idleTimeout: .seconds(30), maxRequestLineBytes: 4096, maxHeaderCount: 50, maxHeaderBytes: 16384, maxUnauthenticatedConnections: 100))
        #expect(c.allowedOrigins == ["https://app.example.com", "http://localhost:3000"])
        #expect(c.allowDevTokensOnNetwork)
        #expect(try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK": "1"]).allowDevTokensOnNetwork)
        #expect(try !ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK": "false"]).allowDevTokensOnNetwork)

        #expect(throws: ConfigurationError("--allow-dev-tokens-on-network / MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK must be 1 or 0 (true or false).")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_ALLOW_DEV_TOKENS_ON_NETWORK": "maybe"])
        }
        #expect(throws: ConfigurationError("--allowed-origins / MEDVIEW_ALLOWED_ORIGINS: 'https://app.example.com/path' is not an origin such as https://app.example.com (scheme, host and optional port only).")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_ALLOWED_ORIGINS": "https://app.example.com/path"])
        }
        #expect(throws: ConfigurationError("--max-unauthenticated-connections / MEDVIEW_MAX_UNAUTHENTICATED_CONNECTIONS must be at least 1.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_MAX_UNAUTHENTICATED_CONNECTIONS": "0"])
        }
        #expect(throws: ConfigurationError("--http-header-timeout-seconds / MEDVIEW_HTTP_HEADER_TIMEOUT_SECONDS must be at least 1.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_HTTP_HEADER_TIMEOUT_SECONDS": "0"])
        }
    }

    @Test("with nothing set, the embedded defaults")
    func defaults() throws {
        let c = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [:])
        #expect(c.host == "127.0.0.1")
        #expect(c.port == 8080)
        #expect(c.dataDirectory == "./data")
        #expect(c.model == "")
        #expect(c.isDevelopment)
        #expect(c.chat.chunking.maxCharacters == 256)
        #expect(c.chat.chunking.maxDelay == .milliseconds(50))
        #expect(c.limits.maxFrameBytes == 65536)
        #expect(c.limits.hardFrameBytes == 1024 * 1024)
        #expect(c.limits.idleTimeout == .seconds(900))
        #expect(c.chat.temperature == nil)
        #expect(c.logLevel == .info)
        #expect(c.cognito == nil)
        #expect(c.databasePath == "./data/medview.sqlite")
    }

    @Test("the command line wins over the environment, which wins over the default; empty variables count as unset")
    func precedence() throws {
        var a = ServeArguments()
        a.port = 9000
        a.model = "scripted"
        let env = ["MEDVIEW_PORT": "7000", "MEDVIEW_HOST": "0.0.0.0", "MEDVIEW_MODEL": "local", "MEDVIEW_DATA_DIR": "", "MEDVIEW_CHUNK_CHARS": "64", "MEDVIEW_LOG_LEVEL": "debug"]
        let c = try ServerConfiguration.resolve(arguments: a, environment: env)
        #expect(c.port == 9000)
        #expect(c.model == "scripted")
        #expect(c.host == "0.0.0.0")
        #expect(c.dataDirectory == "./data")
        #expect(c.chat.chunking.maxCharacters == 64)
        #expect(c.logLevel == .debug)
        #expect(c.processEnvironment == env)
    }

    @Test("bounds hold for every source, and errors name the option and the variable")
    func bounds() throws {
        var a = ServeArguments()
        a.chunkChars = 4
        #expect(throws: ConfigurationError("--chunk-chars / MEDVIEW_CHUNK_CHARS must be at least 8.")) {
            try ServerConfiguration.resolve(arguments: a, environment: [:])
        }
        #expect(throws: ConfigurationError("--max-frame-bytes / MEDVIEW_MAX_FRAME_BYTES must be at least 1024.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_MAX_FRAME_BYTES": "10"])
        }
        #expect(throws: ConfigurationError("MEDVIEW_PORT must be a whole number.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_PORT": "eighty"])
        }
        #expect(throws: ConfigurationError("--temperature / MEDVIEW_TEMPERATURE must be a number from 0 to 2.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_TEMPERATURE": "3"])
        }
        #expect(throws: ConfigurationError("--environment / MEDVIEW_ENV must be 'development' or 'production'.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_ENV": "staging"])
        }
        #expect(throws: ConfigurationError("Unknown log level 'loud'.")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_LOG_LEVEL": "loud"])
        }
        // Port 0 (a free port) is allowed.
        #expect(try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_PORT": "0"]).port == 0)
    }

    @Test("the hard frame limit grows with the protocol limit; the temperature is kept")
    func derived() throws {
        var a = ServeArguments()
        a.maxFrameBytes = 512 * 1024
        a.temperature = 0.2
        let c = try ServerConfiguration.resolve(arguments: a, environment: [:])
        #expect(c.limits.hardFrameBytes == 2 * 1024 * 1024)
        #expect(c.chat.temperature == 0.2)
    }

    @Test("Cognito needs both the issuer and the client id, and production is selected by name")
    func cognito() throws {
        #expect(throws: ConfigurationError("Cognito needs both --cognito-issuer and --cognito-client-id (MEDVIEW_COGNITO_ISSUER, MEDVIEW_COGNITO_CLIENT_ID).")) {
            try ServerConfiguration.resolve(arguments: ServeArguments(), environment: ["MEDVIEW_COGNITO_CLIENT_ID": "abc"])
        }
        var a = ServeArguments()
        a.environment = "production"
        a.cognitoIssuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
        let c = try ServerConfiguration.resolve(arguments: a, environment: ["MEDVIEW_COGNITO_CLIENT_ID": "client123"])
        #expect(!c.isDevelopment)
        #expect(c.cognito?.clientId == "client123")
        #expect(c.cognito?.scopes == "openid email")
        #expect(c.cognito?.pageTokenUse == "access")
    }
}
