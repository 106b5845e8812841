import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import MedViewCore
import MedViewProtocol

/// The embedded model: a GGUF Llama-architecture model run in-process, in pure Swift.
///
/// Generation runs on a dedicated serial dispatch queue, never on the Swift concurrency pool;
/// its matrix products use `threads` threads. Up to ``Configuration/concurrentAnswers`` answers
/// advance together a token at a time (so a second patient need not wait for the first answer to
/// end); more wait their turn. Tokens are streamed as deltas as they are produced; cancelling the
/// consumer stops generation before the next token.
public struct LocalModel: ChatModel {
    /// Settings of the embedded model.
    public struct Configuration: Sendable, Equatable {
        /// Positions in the key/value cache (prompt plus answer).
        public var contextLength: Int
        /// Threads for the matrix products.
        public var threads: Int
        public var sampling: SamplingParameters
        /// Text that ends an answer (besides the end-of-turn tokens).
        public var stopStrings: [String]
        /// Answers generated together, each with its own KV cache (23 KB per token of context).
        public var concurrentAnswers: Int

        public init(contextLength: Int = 2048, threads: Int = 2, sampling: SamplingParameters = .init(), stopStrings: [String] = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"], concurrentAnswers: Int = 4) {
            self.contextLength = contextLength
            self.threads = threads
            self.sampling = sampling
            self.stopStrings = stopStrings
            self.concurrentAnswers = max(1, concurrentAnswers)
        }
    }

    /// The built-in model's id.
    public static let defaultModelId = "SmolLM2-135M-Instruct-Q4_1"

    public let descriptor: ModelDescriptor
    public let configuration: Configuration
    let engine: Engine

    /// Loads the GGUF model at `path`.
    public init(path: String, id: String? = nil, configuration: Configuration = .init(), logger: Logger = Logger(label: "medview.local-model")) throws(LocalModelError) {
        let model = try LlamaModel(path: path)
        let name = id ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        self.init(model: model, id: name, configuration: configuration, logger: logger)
    }

    /// Wraps a loaded model.
    public init(model: LlamaModel, id: String, configuration: Configuration = .init(), logger: Logger = Logger(label: "medview.local-model")) {
        let context = min(configuration.contextLength, model.hyperparameters.trainedContextLength)
        var configuration = configuration
        configuration.contextLength = context
        self.configuration = configuration
        descriptor = ModelDescriptor(provider: "local", id: id, demo: true)
        engine = Engine(model: model, configuration: configuration, logger: logger)
    }

    public func stream(_ request: ModelRequest) -> AsyncThrowingStream<ModelEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: ModelEvent.self, throwing: (any Error).self)
        let flag = CancellationFlag()
        continuation.onTermination = { _ in flag.cancel() }
        engine.enqueue(request, cancelled: flag, continuation: continuation)
        return stream
    }

    /// The ChatML prompt for a request: template parts are tokenized with special tokens, message
    /// text without (so a patient cannot type a turn marker). Oldest turns are dropped, and then
    /// the last message is cut from its start, to leave `reserve` positions for the answer.
    public static func promptTokens(for request: ModelRequest, tokenizer: Tokenizer, contextLength: Int, reserve: Int) -> [Int32] {
        func turn(_ role: String, _ text: String) -> [Int32] {
            tokenizer.encode("<|im_start|>" + role + "\n", parseSpecial: true)
                + tokenizer.encode(text)
                + tokenizer.encode("<|im_end|>\n", parseSpecial: true)
        }
        let system = turn("system", request.system)
        let assistantStart = tokenizer.encode("<|im_start|>assistant\n", parseSpecial: true)
        var turns = request.messages.map { turn($0.role == .user ? "user" : "assistant", $0.text) }
        let budget = max(1, contextLength - reserve)
        func length() -> Int { system.count + assistantStart.count + turns.reduce(0) { $0 + $1.count } }
        while turns.count > 1, length() > budget {
            turns.removeFirst()
        }
        var prompt = system + turns.joined() + assistantStart
        if prompt.count > budget {
            // Even the last message does not fit: keep its most recent tokens.
            prompt = Array(prompt.suffix(budget))
        }
        return prompt
    }
}

/// The model's threads are a `Service`: on graceful shutdown (after the stream registry has
/// drained every answer) it refuses new answers, lets the generation loop finish, and stops its
/// worker threads.
extension LocalModel: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        await engine.close()
    }
}

/// Set once when the consumer goes away; read by the generation loop between tokens.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func cancel() { lock.withLock { value = true } }
    var isCancelled: Bool { lock.withLock { value } }
}

extension LocalModel {
    /// Runs the answers. Several answers advance together, one token each in turn (a prompt in
    /// chunks of up to 64 tokens), so a second patient's answer starts at once instead of waiting
    /// for the first one to finish; each has its own KV cache ("slot"), kept after the answer so
    /// that the next message of the same conversation reuses its prefix. Beyond
    /// ``Configuration/concurrentAnswers`` answers, the rest wait in order.
    ///
    /// All model work happens on one dispatch queue (never the Swift concurrency pool), one step at
    /// a time, and the slots share one pool of threads for their matrix products.
    final class Engine: @unchecked Sendable {
        let model: LlamaModel
        let configuration: Configuration
        let logger: Logger
        private let queue = DispatchQueue(label: "medview.local-model.generate", qos: .userInitiated)
        private let parallel: Parallel
        private let lock = NSLock()
        /// Requests not yet seen by the loop (guarded by `lock`).
        private var incoming: [Generation] = []
        /// Whether the loop is running or scheduled (guarded by `lock`).
        private var looping = false
        /// Set by ``close()``: new answers are refused (guarded by `lock`).
        private var closed = false
        // Touched only on `queue`.
        private var slots: [Slot] = []
        private var requestCount: UInt64 = 0

        /// A KV cache and the tokens it holds.
        final class Slot {
            let session: InferenceSession
            var cachedTokens: [Int32] = []
            var busy = false
            var lastUsed: UInt64 = 0
            init(session: InferenceSession) { self.session = session }
        }

        /// One answer in progress.
        final class Generation {
            let request: ModelRequest
            let cancelled: CancellationFlag
            let continuation: AsyncThrowingStream<ModelEvent, any Error>.Continuation
            var slot: Slot?
            var prompt: [Int32] = []
            var shared = 0
            var promptCursor = 0
            var logits: [Float]?
            var sampler = Sampler(.greedy)
            var assembler = TextAssembler(stopStrings: [])
            var history: [Int32] = []
            var produced = 0
            var maxOutput = 1
            var reason = ModelStopReason.maxTokens
            var started = ContinuousClock.now
            var promptTime: Duration = .zero
            var finished = false

            init(request: ModelRequest, cancelled: CancellationFlag, continuation: AsyncThrowingStream<ModelEvent, any Error>.Continuation) {
                self.request = request
                self.cancelled = cancelled
                self.continuation = continuation
            }
        }

        init(model: LlamaModel, configuration: Configuration, logger: Logger) {
            self.model = model
            self.configuration = configuration
            self.logger = logger
            parallel = Parallel(threads: max(1, configuration.threads))
        }

        deinit { parallel.shutdown() }

        func enqueue(_ request: ModelRequest, cancelled: CancellationFlag, continuation: AsyncThrowingStream<ModelEvent, any Error>.Continuation) {
            let generation = Generation(request: request, cancelled: cancelled, continuation: continuation)
            let start = lock.withLock { () -> Bool? in
                if closed { return nil }
                incoming.append(generation)
                if looping { return false }
                looping = true
                return true
            }
            guard let start else {
                continuation.finish(throwing: ModelError(kind: .unavailable, retryable: true, detail: "the local model is shutting down"))
                return
            }
            if start { queue.async { self.loop() } }
        }

        /// Refuses new answers, waits for the generation loop to finish the ones it has (on
        /// shutdown they have been cancelled), then stops the worker threads.
        func close() async {
            lock.withLock { closed = true }
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                // The loop runs on this serial queue until no answer is left, so this runs after it.
                queue.async { done.resume() }
            }
            parallel.shutdown()
        }

        /// Steps every running answer once per round until none is left and none is waiting.
        private func loop() {
            var running: [Generation] = []
            var waiting: [Generation] = []
            while true {
                let arrived: [Generation]? = lock.withLock {
                    let arrived = incoming
                    incoming = []
                    if arrived.isEmpty, running.isEmpty, waiting.isEmpty {
                        looping = false
                        return nil
                    }
                    return arrived
                }
                guard let arrived else { return }
                for generation in arrived {
                    generation.prompt = prompt(for: generation.request)
                }
                waiting += arrived
                waiting.removeAll { generation in
                    guard generation.cancelled.isCancelled else { return false }
                    generation.continuation.finish()
                    return true
                }
                while let next = waiting.first, let slot = slot(for: next) {
                    waiting.removeFirst()
                    begin(next, in: slot)
                    running.append(next)
                }
                for generation in running {
                    step(generation)
                }
                running.removeAll { generation in
                    guard generation.finished else { return false }
                    generation.slot?.busy = false
                    return true
                }
            }
        }

        /// A free slot for `generation`: the one whose cache shares the longest prefix with its
        /// prompt (the same conversation), else a new one while under the limit, else the least
        /// recently used free one; nil when all are busy.
        private func slot(for generation: Generation) -> Slot? {
            let free = slots.filter { !$0.busy }
            let prompt = generation.prompt
            if let best = free.map({ (slot: $0, shared: Self.sharedPrefix(prompt, $0.cachedTokens)) }).max(by: { $0.shared < $1.shared }),
               best.shared > 0 {
                return best.slot
            }
            if slots.count < max(1, configuration.concurrentAnswers) {
                let slot = Slot(session: InferenceSession(model: model, contextLength: configuration.contextLength, parallel: parallel))
                slots.append(slot)
                return slot
            }
            return free.min { $0.lastUsed < $1.lastUsed }
        }

        private func prompt(for request: ModelRequest) -> [Int32] {
            let context = configuration.contextLength
            let maxOutput = max(1, request.maxOutputTokens)
            return LocalModel.promptTokens(for: request, tokenizer: model.tokenizer, contextLength: context, reserve: min(maxOutput, context / 2))
        }

        /// How many leading tokens `a` and `b` have in common.
        static func sharedPrefix(_ a: [Int32], _ b: [Int32]) -> Int {
            var n = 0
            while n < min(a.count, b.count), a[n] == b[n] { n += 1 }
            return n
        }

        private func begin(_ generation: Generation, in slot: Slot) {
            requestCount += 1
            slot.busy = true
            slot.lastUsed = requestCount
            generation.slot = slot
            generation.maxOutput = max(1, generation.request.maxOutputTokens)
            let prompt = generation.prompt
            // Reuse the cached prefix (the system prompt and earlier turns) when it matches.
            // At least the last prompt token is evaluated: its logits choose the first answer token.
            let shared = min(Self.sharedPrefix(prompt, slot.cachedTokens), prompt.count - 1)
            slot.session.rewind(to: shared)
            slot.cachedTokens = Array(prompt[..<shared])
            generation.shared = shared
            generation.promptCursor = shared
            var sampling = configuration.sampling
            if let t = generation.request.temperature { sampling.temperature = Float(t) }
            sampling.seed = sampling.seed &+ requestCount
            generation.sampler = Sampler(sampling)
            generation.assembler = TextAssembler(stopStrings: configuration.stopStrings)
            generation.history = prompt
            generation.started = ContinuousClock.now
        }

        /// One step: the next chunk of the prompt, or one token of the answer.
        private func step(_ g: Generation) {
            guard let slot = g.slot, !g.finished else { return }
            let session = slot.session
            if g.cancelled.isCancelled {
                end(g)
                return
            }
            if g.logits == nil {
                let end = min(g.prompt.count, g.promptCursor + session.batchSize)
                let chunk = Array(g.prompt[g.promptCursor..<end])
                let logits = session.evaluate(chunk)
                slot.cachedTokens += chunk
                g.promptCursor = end
                if end == g.prompt.count {
                    g.logits = logits
                    g.promptTime = ContinuousClock.now - g.started
                }
                return
            }
            let tokenizer = model.tokenizer
            let token = g.sampler.sample(g.logits!, history: g.history)
            if tokenizer.endOfGenerationIds.contains(token) {
                g.reason = .endTurn
                end(g)
                return
            }
            g.produced += 1
            g.history.append(token)
            let text = g.assembler.append(tokenizer.bytes(of: token))
            if !text.isEmpty { g.continuation.yield(.delta(text)) }
            if g.assembler.stopped {
                g.reason = .stopSequence
                end(g)
                return
            }
            guard session.position < session.contextLength, g.produced < g.maxOutput else {
                end(g)
                return
            }
            g.logits = session.evaluate([token])
            slot.cachedTokens.append(token)
        }

        private func end(_ g: Generation) {
            g.finished = true
            let tail = g.assembler.finish()
            if !tail.isEmpty { g.continuation.yield(.delta(tail)) }
            logger.debug("local_model.generated", metadata: [
                "tokens.input": "\(g.prompt.count)", "tokens.cached": "\(g.shared)", "tokens.output": "\(g.produced)",
                "prompt.ms": "\(g.promptTime.components.seconds * 1000 + g.promptTime.components.attoseconds / 1_000_000_000_000_000)",
            ])
            g.continuation.yield(.usage(Usage(inputTokens: g.prompt.count, outputTokens: g.produced)))
            if !g.cancelled.isCancelled { g.continuation.yield(.stop(g.reason)) }
            g.continuation.finish()
        }
    }
}
