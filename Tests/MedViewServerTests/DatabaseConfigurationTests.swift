import MedViewPostgres
import MedViewServer
import Testing

@Suite struct DatabaseConfigurationTests {
    @Test("without a database URL the SQLite file is the store")
    func sqliteByDefault() throws {
        let c = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: [:])
        #expect(c.database == nil)
    }

    @Test("the database URL, pool size and IAM switch come from the command line or the environment")
    func postgresSettings() throws {
        let env = [
            "MEDVIEW_DATABASE_URL": "postgres://app@db.internal:5433/medview?sslrootcert=/etc/rds.pem",
            "MEDVIEW_DATABASE_POOL_SIZE": "25",
            "AWS_REGION": "eu-central-1",
        ]
        let fromEnvironment = try #require(try ServerConfiguration.resolve(arguments: ServeArguments(), environment: env).database)
        #expect(fromEnvironment.host == "db.internal")
        #expect(fromEnvironment.port == 5433)
        #expect(fromEnvironment.poolSize == 25)
        #expect(fromEnvironment.sslMode == .verifyFull)
        #expect(fromEnvironment.rootCertificatePath == "/etc/rds.pem")
        #expect(!fromEnvironment.iamAuthentication)

        var a = ServeArguments()
        a.databaseUrl = "postgres://iam_user@db.internal/medview"
        a.databasePoolSize = 4
        a.databaseIamAuth = true
        let fromArguments = try #require(try ServerConfiguration.resolve(arguments: a, environment: env).database)
        #expect(fromArguments.username == "iam_user")
        #expect(fromArguments.poolSize == 4)
        #expect(fromArguments.iamAuthentication)
        #expect(fromArguments.region == "eu-central-1")
        #expect(fromArguments.password == nil)

        let iamFromEnvironment = try ServerConfiguration.resolve(arguments: ServeArguments(), environment: env.merging(["MEDVIEW_DATABASE_IAM_AUTH": "true"]) { $1 })
        #expect(iamFromEnvironment.database?.iamAuthentication == true)
    }

    @Test("bad database settings are refused, naming the option and variable, never the password")
    func refusals() {
        let cases: [(ServeArguments, [String: String], String)] = [
            (ServeArguments(), ["MEDVIEW_DATABASE_URL": "postgres://app:hunter2@db/x?sslmode=sometimes"], "--database-url / MEDVIEW_DATABASE_URL"),
            (ServeArguments(), ["MEDVIEW_DATABASE_URL": "postgres://app@db/x", "MEDVIEW_DATABASE_POOL_SIZE": "0"], "--database-pool-size / MEDVIEW_DATABASE_POOL_SIZE"),
            (ServeArguments(), ["MEDVIEW_DATABASE_URL": "postgres://app@db/x", "MEDVIEW_DATABASE_POOL_SIZE": "many"], "MEDVIEW_DATABASE_POOL_SIZE"),
            (ServeArguments(), ["MEDVIEW_DATABASE_IAM_AUTH": "true"], "--database-iam-auth"),
            (ServeArguments(), ["MEDVIEW_DATABASE_URL": "postgres://app:hunter2@db/x", "MEDVIEW_DATABASE_IAM_AUTH": "true", "AWS_REGION": "us-east-1"], "password"),
        ]
        for (arguments, environment, named) in cases {
            do {
                _ = try ServerConfiguration.resolve(arguments: arguments, environment: environment)
                Issue.record("accepted \(environment)")
            } catch {
                #expect(error.description.contains(named), "\(error.description)")
                #expect(!error.description.contains("hunter2"))
            }
        }
    }
}
