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

/// One terminal chat: reads questions, streams answers, handles Ctrl-C.
public final class ChatSession: Sendable {
    public let client: MedViewClient
    let terminal: Terminal
    let statesToStandardError: Bool
    private let target: Mutex<ConversationTarget>
    /// The answer streaming now, and whether Ctrl-C already asked to stop it.
    private let current = Mutex<(answer: Answer?, stopping: Bool)>((nil, false))
    /// Ctrl-C when nothing can be stopped: leave.
    private let leave: AsyncStream<Void>.Continuation
    private let leaving: AsyncStream<Void>

    /// A chat on `client` into `target`; connection states go to standard error when `statesToStandardError` (for scripts).
    public init(client: MedViewClient, terminal: Terminal, target: ConversationTarget, statesToStandardError: Bool) {
        self.client = client
        self.terminal = terminal
        self.target = Mutex(target)
        self.statesToStandardError = statesToStandardError
        (leaving, leave) = AsyncStream<Void>.makeStream()
    }

    /// One question: 0 answered, 1 failed, 3 timed out, 130 stopped with Ctrl-C.
    public func once(_ question: String, timeout: Duration) async -> Int32 {
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
    public func interactive() async -> Int32 {
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
