import Dispatch
import Foundation
import Logging
import MedViewCore
import MedViewProtocol

/// The embedded model: a GGUF Llama-architecture model run in-process, in pure Swift.
///
/// Generation runs on a dedicated serial dispatch queue, never on the Swift concurrency pool;
/// its matrix products use `threads` threads. One answer is generated at a time and the others
/// wait their turn (fine for the 135M demo model, whose answers take seconds). Tokens are streamed
/// as deltas as they are produced; cancelling the consumer stops generation before the next token.
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

        public init(contextLength: Int = 2048, threads: Int = 2, sampling: SamplingParameters = .init(), stopStrings: [String] = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]) {
            self.contextLength = contextLength
            self.threads = threads
            self.sampling = sampling
            self.stopStrings = stopStrings
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

/// Set once when the consumer goes away; read by the generation loop between tokens.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func cancel() { lock.withLock { value = true } }
    var isCancelled: Bool { lock.withLock { value } }
}

extension LocalModel {
    /// Owns the inference session; every use of it happens on `queue`.
    final class Engine: @unchecked Sendable {
        let model: LlamaModel
        let configuration: Configuration
        let logger: Logger
        private let queue = DispatchQueue(label: "medview.local-model.generate", qos: .userInitiated)
        private var session: InferenceSession?
        private var cachedTokens: [Int32] = []
        private var requestCount: UInt64 = 0

        init(model: LlamaModel, configuration: Configuration, logger: Logger) {
            self.model = model
            self.configuration = configuration
            self.logger = logger
        }

        func enqueue(_ request: ModelRequest, cancelled: CancellationFlag, continuation: AsyncThrowingStream<ModelEvent, any Error>.Continuation) {
            queue.async {
                self.generate(request, cancelled: cancelled, continuation: continuation)
            }
        }

        private func generate(_ request: ModelRequest, cancelled: CancellationFlag, continuation: AsyncThrowingStream<ModelEvent, any Error>.Continuation) {
            guard !cancelled.isCancelled else {
                continuation.finish()
                return
            }
            let session = self.session ?? InferenceSession(model: model, contextLength: configuration.contextLength, threads: configuration.threads)
            self.session = session
            requestCount += 1
            let tokenizer = model.tokenizer
            let context = session.contextLength
            let maxOutput = max(1, request.maxOutputTokens)
            let prompt = LocalModel.promptTokens(for: request, tokenizer: tokenizer, contextLength: context, reserve: min(maxOutput, context / 2))
            // Reuse the cached prefix (the system prompt and earlier turns) when it matches.
            var shared = 0
            while shared < min(prompt.count, cachedTokens.count), prompt[shared] == cachedTokens[shared] { shared += 1 }
            shared = min(shared, prompt.count - 1)
            session.rewind(to: shared)
            let started = ContinuousClock.now
            var logits = session.evaluate(Array(prompt[shared...]))
            cachedTokens = prompt
            let promptTime = ContinuousClock.now - started
            var sampling = configuration.sampling
            if let t = request.temperature { sampling.temperature = Float(t) }
            sampling.seed = sampling.seed &+ requestCount
            var sampler = Sampler(sampling)
            var assembler = TextAssembler(stopStrings: configuration.stopStrings)
            var history = prompt
            var produced = 0
            var reason = ModelStopReason.maxTokens
            while produced < maxOutput {
                if cancelled.isCancelled { break }
                let token = sampler.sample(logits, history: history)
                if tokenizer.endOfGenerationIds.contains(token) {
                    reason = .endTurn
                    break
                }
                produced += 1
                history.append(token)
                let text = assembler.append(tokenizer.bytes(of: token))
                if !text.isEmpty { continuation.yield(.delta(text)) }
                if assembler.stopped {
                    reason = .stopSequence
                    break
                }
                guard session.position < context, produced < maxOutput else { break }
                logits = session.evaluate([token])
                cachedTokens.append(token)
            }
            let tail = assembler.finish()
            if !tail.isEmpty { continuation.yield(.delta(tail)) }
            logger.debug("local_model.generated", metadata: [
                "tokens.input": "\(prompt.count)", "tokens.cached": "\(shared)", "tokens.output": "\(produced)",
                "prompt.ms": "\(promptTime.components.seconds * 1000 + promptTime.components.attoseconds / 1_000_000_000_000_000)",
            ])
            continuation.yield(.usage(Usage(inputTokens: prompt.count, outputTokens: produced)))
            if !cancelled.isCancelled { continuation.yield(.stop(reason)) }
            continuation.finish()
        }
    }
}
