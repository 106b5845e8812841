import ArgumentParser
import Foundation
import MedViewChat
import MedViewClient

/// `medview chat`: an interactive terminal client built on MedViewClient, the library an app uses.
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a MedView Companion server in the terminal.",
        discussion: """
            Answers stream as they arrive; an emergency alert is shown before the answer, warnings \
            inline, and connection changes as they happen. Ctrl-C stops the current answer; Ctrl-C \
            again (or Ctrl-D) leaves. The token comes from MEDVIEW_TOKEN, or, from a server in \
            development mode, from its development issuer (as the web page gets one). \
            Exit codes with --once: 0 answered, 1 the answer failed, 2 no token or bad options, \
            3 no answer in time, 130 stopped with Ctrl-C.
            """
    )

    @Option(help: "The server's base URL.")
    var url: String = "http://127.0.0.1:8080"
    @Option(help: "Continue this conversation (an id from --list) instead of starting a new one.")
    var conversation: String?
    @Flag(help: "List your conversations and exit.")
    var list = false
    @Option(help: "Ask one question, print the answer and exit (the exit code tells how it went).")
    var once: String?
    @Option(help: "Development mode only: the user to get a development token for.")
    var user: String = "terminal"
    @Option(help: "With --once: seconds to wait for the whole answer.")
    var timeout: Int = 120

    func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw ValidationError("--url must start with http:// or https://.") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive.") }
    }

    func run() async throws {
        let terminal = Terminal()
        let tokens: TokenProvider
        if let token = ProcessInfo.processInfo.environment["MEDVIEW_TOKEN"].flatMap({ $0.isEmpty ? nil : $0 }) {
            tokens = { _ in AccessToken(jwt: token) }
        } else {
            let url = self.url
            let user = self.user
            do {
                _ = try await MedViewClient.developmentToken(baseURL: url, user: user)
            } catch {
                terminal.error("No token: set MEDVIEW_TOKEN, or point --url at a server in development mode (\(Self.describe(error))).")
                throw ExitCode(2)
            }
            tokens = { _ in try await MedViewClient.developmentToken(baseURL: url, user: user) }
        }
        let client = MedViewClient(configuration: MedViewClientConfiguration(baseURL: url), tokenProvider: tokens)
        if list {
            defer { Task { await client.close() } }
            do {
                let conversations = try await client.conversations()
                if conversations.isEmpty { terminal.line("No conversations yet.") }
                let formatter = ISO8601DateFormatter()
                for c in conversations { terminal.line("\(c.id)  \(formatter.string(from: c.updatedAt))  \(Terminal.printable(c.title))") }
                await client.close()
            } catch {
                await client.close()
                terminal.error("Could not list conversations: \(Self.describe(error))")
                throw ExitCode(1)
            }
            return
        }
        let session = ChatSession(client: client, terminal: terminal, target: conversation.map { .existing($0) } ?? .newConversation(), statesToStandardError: once != nil)
        let code: Int32
        if let once {
            code = await session.once(once, timeout: .seconds(timeout))
        } else {
            code = await session.interactive()
        }
        await client.close()
        if code != 0 { throw ExitCode(code) }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? MedViewClientError { return error.description }
        return "\(type(of: error))"
    }
}
