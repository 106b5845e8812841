import ArgumentParser
import Dispatch
import Foundation
import MedViewClient
import MedViewProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// The terminal's output: unbuffered writes, colours only on a terminal, control characters from
/// the server made visible instead of being sent to the terminal.
struct Terminal: Sendable {
    let colour = isatty(STDOUT_FILENO) == 1

    func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    func line(_ text: String) {
        write(text + "\n")
    }

    func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    func styled(_ text: String, _ codes: String) -> String {
        colour ? "\u{1B}[\(codes)m\(text)\u{1B}[0m" : text
    }

    /// Server text with escape sequences and other control characters (but not newlines and tabs) removed.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { scalar in
            scalar == "\n" || scalar == "\t" || scalar.properties.generalCategory != .control
        }))
    }
}

/// One terminal chat: reads questions, streams answers, handles Ctrl-C.
final class ChatSession: Sendable {
    let client: MedViewClient
    let terminal: Terminal
    let statesToStandardError: Bool
    private let target: Mutex<ConversationTarget>
    /// The answer streaming now, and whether Ctrl-C already asked to stop it.
    private let current = Mutex<(answer: Answer?, stopping: Bool)>((nil, false))
    /// Ctrl-C when nothing can be stopped: leave.
    private let leave: AsyncStream<Void>.Continuation
    private let leaving: AsyncStream<Void>

    init(client: MedViewClient, terminal: Terminal, target: ConversationTarget, statesToStandardError: Bool) {
        self.client = client
        self.terminal = terminal
        self.target = Mutex(target)
        self.statesToStandardError = statesToStandardError
        (leaving, leave) = AsyncStream<Void>.makeStream()
    }

    /// One question: 0 answered, 1 failed, 3 timed out, 130 stopped with Ctrl-C.
    func once(_ question: String, timeout: Duration) async -> Int32 {
        let signals = installInterruptHandler()
        defer { signals.cancel() }
        await client.connect()
        let states = Task { await self.showStates() }
        defer { states.cancel() }
        return await withTaskGroup(of: Int32.self) { group in
            group.addTask { await self.ask(question) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.terminal.error("[no answer within \(timeout)]") }
                return 3
            }
            group.addTask {
                for await _ in self.leaving { return 130 }
                return 130
            }
            let code = await group.next() ?? 1
            group.cancelAll()
            return code
        }
    }

    /// The interactive loop; returns when the person leaves (Ctrl-D, or Ctrl-C with nothing to stop).
    func interactive() async -> Int32 {
        let signals = installInterruptHandler()
        defer { signals.cancel() }
        terminal.line(terminal.styled("MedView Companion", "1") + " — type a question and press Enter. Ctrl-C stops an answer; Ctrl-C again or Ctrl-D leaves.")
        await client.connect()
        let states = Task { await self.showStates() }
        defer { states.cancel() }
        let lines = Self.standardInputLines()
        return await withTaskGroup(of: Int32.self) { group in
            group.addTask {
                self.prompt()
                for await line in lines {
                    let question = line.trimmingCharacters(in: .whitespacesAndNewlines)
                    if !question.isEmpty { _ = await self.ask(question) }
                    self.prompt()
                }
                self.terminal.line("")
                return 0
            }
            group.addTask {
                for await _ in self.leaving { return 0 }
                return 0
            }
            let code = await group.next() ?? 0
            group.cancelAll()
            return code
        }
    }

    private func prompt() {
        terminal.write(terminal.styled("you> ", "1;36"))
    }

    /// Sends a question and renders its answer; returns the --once exit code.
    private func ask(_ question: String) async -> Int32 {
        let answer = await client.send(question, to: target.withLock { $0 })
        current.withLock { $0 = (answer, false) }
        defer { current.withLock { $0 = (nil, false) } }
        var atLineStart = true
        for await event in answer {
            switch event {
            case .started(let start):
                target.withLock { $0 = .existing(start.conversationId) }
                let label = start.model.demo ? " [demo model \(Terminal.printable(start.model.id)): not medical advice]" : ""
                terminal.line(terminal.styled("assistant" + label, "2"))
            case .safetyAlert(let alert):
                if !atLineStart { terminal.line("") }
                let title = alert.severity == "urgent" ? "URGENT" : "EMERGENCY"
                terminal.line(terminal.styled("!!! \(title): \(Terminal.printable(alert.guidance))", "1;97;41"))
                for action in alert.actions {
                    terminal.line(terminal.styled("!!! \(Terminal.printable(action.label)): \(Terminal.printable(action.href))", "1;31"))
                }
                atLineStart = true
            case .safetyWarning(let warning):
                if !atLineStart { terminal.line("") }
                let drugs = warning.drugs.map { " (" + $0.map(Terminal.printable).joined(separator: " + ") + ")" } ?? ""
                terminal.line(terminal.styled("[warning \(Terminal.printable(warning.severity))\(drugs)] \(Terminal.printable(warning.advice))", "1;33"))
                atLineStart = true
            case .text(let text):
                let shown = Terminal.printable(text)
                terminal.write(shown)
                atLineStart = shown.hasSuffix("\n")
            case .ended(let end):
                if !atLineStart { terminal.line("") }
                switch end.finishReason {
                case .cancelled: terminal.line(terminal.styled("[answer stopped]", "2"))
                case .length: terminal.line(terminal.styled("[answer cut at the length limit]", "2"))
                case .safety: terminal.line(terminal.styled("[answer stopped for safety]", "2"))
                case .complete: break
                }
                return end.finishReason == .cancelled ? 130 : 0
            case .failed(let failure):
                if !atLineStart { terminal.line("") }
                terminal.line(terminal.styled("[error: \(failure.error.description)]", "1;31"))
                return 1
            }
        }
        return 1
    }

    /// Prints the connection state whenever it changes.
    private func showStates() async {
        var first = true
        for await state in await client.connectionStates() {
            if first, state == .connecting || state == .idle {
                first = false
                continue
            }
            first = false
            let text = terminal.styled("[connection: \(state)]", "2")
            if statesToStandardError {
                terminal.error(text)
            } else if current.withLock({ $0.answer == nil }) {
                // At the prompt: the state on a line of its own, then the prompt again.
                terminal.line("\n" + text)
                prompt()
            } else {
                terminal.line("\n" + text)
            }
        }
    }

    /// Ctrl-C: stop the answer streaming now; with nothing (more) to stop, leave.
    private func installInterruptHandler() -> any DispatchSourceSignal {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            let toStop = current.withLock { state -> Answer? in
                guard let answer = state.answer, !state.stopping else { return nil }
                state.stopping = true
                return answer
            }
            if let toStop {
                terminal.write(terminal.styled(" [stopping…]", "2"))
                Task { await self.client.cancel(toStop) }
            } else {
                leave.yield()
            }
        }
        source.resume()
        return source
    }

    /// Standard input, line by line, read on a thread of its own (reading blocks).
    private static func standardInputLines() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let thread = Thread {
            while let line = readLine(strippingNewline: true) { continuation.yield(line) }
            continuation.finish()
        }
        thread.start()
        return stream
    }
}
