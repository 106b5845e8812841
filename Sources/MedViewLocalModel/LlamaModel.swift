import Foundation

/// The hyperparameters of a Llama-architecture model, from `llama.*` metadata.
public struct LlamaHyperparameters: Sendable, Equatable {
    public var layerCount: Int
    public var embeddingLength: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var trainedContextLength: Int
    public var ropeFrequencyBase: Float
    public var ropeDimensions: Int
    public var rmsEpsilon: Float
    public var vocabularySize: Int

    /// Length of one attention head.
    public var headDimension: Int { embeddingLength / headCount }
    /// Width of the key and value projections.
    public var kvDimension: Int { headDimension * kvHeadCount }
}

/// A Llama-architecture model (RMSNorm, RoPE, grouped-query attention, SwiGLU, optionally tied
/// embeddings) whose weights are read in place from a memory-mapped GGUF file.
///
/// The model is immutable and may be shared; per-conversation state lives in an ``InferenceSession``.
public final class LlamaModel: Sendable {
    /// One transformer block's weights.
    struct Layer: Sendable {
        let attentionNorm: [Float]
        let wq, wk, wv, wo: WeightMatrix
        let ffnNorm: [Float]
        let gate, up, down: WeightMatrix
    }

    public let file: GGUFFile
    public let hyperparameters: LlamaHyperparameters
    public let tokenizer: Tokenizer
    /// The chat template text from the file (`tokenizer.chat_template`), if any.
    public let chatTemplate: String?
    let tokenEmbedding: WeightMatrix
    let output: WeightMatrix
    let outputNorm: [Float]
    let layers: [Layer]
    /// RoPE inverse frequencies, one per rotated pair.
    let inverseFrequencies: [Float]

    /// Loads the model at `path` (mapping it, not copying the weights).
    public convenience init(path: String) throws(LocalModelError) {
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch {
            throw .file(error)
        }
        try self.init(file: file)
    }

    /// Builds the model from an opened GGUF file.
    public init(file: GGUFFile) throws(LocalModelError) {
        self.file = file
        let architecture = file.metadata["general.architecture"]?.string ?? "?"
        guard architecture == "llama" else { throw .unsupportedArchitecture(architecture) }
        func int(_ key: String) throws(LocalModelError) -> Int {
            guard let v = file.metadata["llama." + key]?.int, v > 0 else { throw .file(.missing("llama." + key)) }
            return v
        }
        let tokenizer = try Tokenizer(gguf: file)
        let embedding = try int("embedding_length")
        let heads = try int("attention.head_count")
        let kvHeads = (try? int("attention.head_count_kv")) ?? heads
        guard embedding % heads == 0, heads % kvHeads == 0 else { throw .shapeMismatch("head counts") }
        let headDimension = embedding / heads
        let ropeDims = (try? int("rope.dimension_count")) ?? headDimension
        guard ropeDims <= headDimension, ropeDims % 2 == 0 else { throw .shapeMismatch("rope.dimension_count") }
        let h = LlamaHyperparameters(
            layerCount: try int("block_count"),
            embeddingLength: embedding,
            feedForwardLength: try int("feed_forward_length"),
            headCount: heads,
            kvHeadCount: kvHeads,
            trainedContextLength: (try? int("context_length")) ?? 2048,
            ropeFrequencyBase: Float(file.metadata["llama.rope.freq_base"]?.double ?? 10_000),
            ropeDimensions: ropeDims,
            rmsEpsilon: Float(file.metadata["llama.attention.layer_norm_rms_epsilon"]?.double ?? 1e-5),
            vocabularySize: tokenizer.vocabularySize
        )
        guard embedding % 32 == 0, h.feedForwardLength % 32 == 0 else { throw .shapeMismatch("dimensions must be multiples of 32") }
        hyperparameters = h
        self.tokenizer = tokenizer
        chatTemplate = file.metadata["tokenizer.chat_template"]?.string

        func matrix(_ name: String, rows: Int, columns: Int) throws(LocalModelError) -> WeightMatrix {
            guard let info = file.tensors[name] else { throw .file(.missing("tensor " + name)) }
            guard info.rowLength == columns, info.rowCount == rows else { throw .shapeMismatch(name) }
            return try WeightMatrix(type: info.type, rows: rows, columns: columns, bytes: file.data(of: info))
        }
        func vector(_ name: String, count: Int) throws(LocalModelError) -> [Float] {
            let m = try matrix(name, rows: 1, columns: count)
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                m.dequantizeRow(0, into: buffer.baseAddress!)
                initialized = count
            }
        }
        tokenEmbedding = try matrix("token_embd.weight", rows: h.vocabularySize, columns: embedding)
        output = file.tensors["output.weight"] == nil ? tokenEmbedding : try matrix("output.weight", rows: h.vocabularySize, columns: embedding)
        outputNorm = try vector("output_norm.weight", count: embedding)
        var layers: [Layer] = []
        for i in 0..<h.layerCount {
            let p = "blk.\(i)."
            layers.append(Layer(
                attentionNorm: try vector(p + "attn_norm.weight", count: embedding),
                wq: try matrix(p + "attn_q.weight", rows: embedding, columns: embedding),
                wk: try matrix(p + "attn_k.weight", rows: h.kvDimension, columns: embedding),
                wv: try matrix(p + "attn_v.weight", rows: h.kvDimension, columns: embedding),
                wo: try matrix(p + "attn_output.weight", rows: embedding, columns: embedding),
                ffnNorm: try vector(p + "ffn_norm.weight", count: embedding),
                gate: try matrix(p + "ffn_gate.weight", rows: h.feedForwardLength, columns: embedding),
                up: try matrix(p + "ffn_up.weight", rows: h.feedForwardLength, columns: embedding),
                down: try matrix(p + "ffn_down.weight", rows: embedding, columns: h.feedForwardLength)
            ))
        }
        self.layers = layers
        inverseFrequencies = (0..<(ropeDims / 2)).map { i in
            Float(pow(Double(h.ropeFrequencyBase), -2.0 * Double(i) / Double(ropeDims)))
        }
    }
}
