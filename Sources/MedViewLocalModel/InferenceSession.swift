import Foundation

/// One sequence being evaluated by a ``LlamaModel``: the key/value cache and scratch buffers.
///
/// Not thread-safe: one generation uses a session at a time (``LocalModel`` serialises them).
/// The matrix products inside one evaluation run on `threads` threads.
public final class InferenceSession {
    public let model: LlamaModel
    /// Largest number of positions the cache holds.
    public let contextLength: Int
    /// Tokens evaluated in one pass over the weights during prompt processing.
    public let batchSize: Int
    /// Positions already in the cache.
    public private(set) var position = 0

    let parallel: Parallel
    private let ownsParallel: Bool
    /// The key/value cache in half precision (as llama.cpp keeps it): half the memory and half
    /// the bytes attention reads per cached position.
    private let keys: UnsafeMutablePointer<CacheScalar>
    private let values: UnsafeMutablePointer<CacheScalar>
    private let x, xn, q, k, v, attention, gate, up, sums, logits: UnsafeMutablePointer<Float>
    /// Per-thread partial results of single-token attention: for each head, the running maximum,
    /// the sum of weights and the weighted sum of values.
    private let partials: UnsafeMutablePointer<Float>

    /// Creates a session holding up to `contextLength` positions, computing on `threads` threads.
    public convenience init(model: LlamaModel, contextLength: Int = 2048, threads: Int = 2, batchSize: Int = 64) {
        self.init(model: model, contextLength: contextLength, batchSize: batchSize, parallel: Parallel(threads: max(1, threads)), ownsParallel: true)
    }

    /// A session computing on `parallel`, which several sessions may share as long as only one of
    /// them evaluates at a time (the local model's engine steps its sessions one after another).
    init(model: LlamaModel, contextLength: Int, batchSize: Int = 64, parallel: Parallel, ownsParallel: Bool = false) {
        let h = model.hyperparameters
        self.model = model
        self.contextLength = max(1, contextLength)
        self.batchSize = max(1, batchSize)
        self.parallel = parallel
        self.ownsParallel = ownsParallel
        let cache = h.layerCount * self.contextLength * h.kvDimension
        keys = .allocate(capacity: cache)
        values = .allocate(capacity: cache)
        let n = self.batchSize
        x = .allocate(capacity: n * h.embeddingLength)
        xn = .allocate(capacity: n * h.embeddingLength)
        q = .allocate(capacity: n * h.embeddingLength)
        k = .allocate(capacity: n * h.kvDimension)
        v = .allocate(capacity: n * h.kvDimension)
        attention = .allocate(capacity: n * h.embeddingLength)
        gate = .allocate(capacity: n * h.feedForwardLength)
        up = .allocate(capacity: n * h.feedForwardLength)
        sums = .allocate(capacity: n * max(h.feedForwardLength, h.embeddingLength) / 32)
        logits = .allocate(capacity: n * h.vocabularySize)
        partials = .allocate(capacity: parallel.threads * h.headCount * (h.headDimension + 2))
    }

    deinit {
        if ownsParallel { parallel.shutdown() }
        keys.deallocate()
        values.deallocate()
        for p in [x, xn, q, k, v, attention, gate, up, sums, logits, partials] {
            p.deallocate()
        }
    }

    /// Forgets every cached position.
    public func reset() { position = 0 }

    /// Drops cached positions from `newPosition` on (to reuse a shared prefix).
    public func rewind(to newPosition: Int) { position = max(0, min(position, newPosition)) }

    /// Evaluates `tokens` at the next positions and returns the logits after the last token
    /// (or after every token, `tokens.count` × vocabulary, with `allLogits`).
    /// - Precondition: the tokens fit: `position + tokens.count <= contextLength`, ids in range.
    public func evaluate(_ tokens: [Int32], allLogits: Bool = false) -> [Float] {
        precondition(position + tokens.count <= contextLength, "context full")
        let vocabulary = model.hyperparameters.vocabularySize
        var result: [Float] = []
        result.reserveCapacity(allLogits ? tokens.count * vocabulary : vocabulary)
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + batchSize)
            let isLast = end == tokens.count
            forward(Array(tokens[start..<end]), logitsFor: allLogits ? .all : (isLast ? .last : .none))
            let n = end - start
            if allLogits {
                result.append(contentsOf: UnsafeBufferPointer(start: logits, count: n * vocabulary))
            } else if isLast {
                result.append(contentsOf: UnsafeBufferPointer(start: logits, count: vocabulary))
            }
            start = end
        }
        return result
    }

    private enum LogitsWanted { case none, last, all }

    private func forward(_ tokens: [Int32], logitsFor wanted: LogitsWanted) {
        let h = model.hyperparameters
        let n = tokens.count
        let dim = h.embeddingLength
        let kvDim = h.kvDimension
        let ffn = h.feedForwardLength
        let p0 = position
        for (t, token) in tokens.enumerated() {
            let id = Int(token)
            precondition(id >= 0 && id < h.vocabularySize, "token id out of range")
            model.tokenEmbedding.dequantizeRow(id, into: x + t * dim)
        }
        for (index, layer) in model.layers.enumerated() {
            // Attention.
            for t in 0..<n {
                rmsNorm(x + t * dim, weight: layer.attentionNorm, out: xn + t * dim, count: dim, epsilon: h.rmsEpsilon)
                blockSums(xn + t * dim, count: dim, into: sums + t * dim / 32)
            }
            multiply([(layer.wq, q), (layer.wk, k), (layer.wv, v)], input: xn, sums: sums, n: n)
            for t in 0..<n {
                rope(q + t * dim, heads: h.headCount, position: p0 + t)
                rope(k + t * kvDim, heads: h.kvHeadCount, position: p0 + t)
                let slot = (index * contextLength + p0 + t) * kvDim
                toHalf(k + t * kvDim, into: keys + slot, count: kvDim)
                toHalf(v + t * kvDim, into: values + slot, count: kvDim)
            }
            if n == 1 {
                attendOne(layer: index, position: p0)
            } else {
                attend(layer: index, n: n, start: p0)
            }
            for t in 0..<n {
                blockSums(attention + t * dim, count: dim, into: sums + t * dim / 32)
            }
            multiply([(layer.wo, xn)], input: attention, sums: sums, n: n)
            add(xn, into: x, count: n * dim)
            // Feed-forward (SwiGLU).
            for t in 0..<n {
                rmsNorm(x + t * dim, weight: layer.ffnNorm, out: xn + t * dim, count: dim, epsilon: h.rmsEpsilon)
                blockSums(xn + t * dim, count: dim, into: sums + t * dim / 32)
            }
            multiply([(layer.gate, gate), (layer.up, up)], input: xn, sums: sums, n: n)
            swiGLU(gate, up, count: n * ffn)
            for t in 0..<n {
                blockSums(gate + t * ffn, count: ffn, into: sums + t * ffn / 32)
            }
            multiply([(layer.down, xn)], input: gate, sums: sums, n: n)
            add(xn, into: x, count: n * dim)
        }
        position += n
        switch wanted {
        case .none:
            return
        case .last:
            rmsNorm(x + (n - 1) * dim, weight: model.outputNorm, out: xn, count: dim, epsilon: h.rmsEpsilon)
            blockSums(xn, count: dim, into: sums)
            multiply([(model.output, logits)], input: xn, sums: sums, n: 1)
        case .all:
            for t in 0..<n {
                rmsNorm(x + t * dim, weight: model.outputNorm, out: xn + t * dim, count: dim, epsilon: h.rmsEpsilon)
                blockSums(xn + t * dim, count: dim, into: sums + t * dim / 32)
            }
            multiply([(model.output, logits)], input: xn, sums: sums, n: n)
        }
    }

    /// `outputs[j][t] = matrices[j] · input[t]` for `n` inputs, all matrices' rows split across threads.
    /// `sums` holds each input's 32-value block sums.
    private func multiply(_ jobs: [(WeightMatrix, UnsafeMutablePointer<Float>)], input: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>, n: Int) {
        let total = jobs.reduce(0) { $0 + $1.0.rows }
        let columns = jobs[0].0.columns
        let input = UnsafePointer(input)
        let sums = UnsafePointer(sums)
        parallel.forEachSlice(total) { range in
            // Several inputs: dequantize two weight rows at a time and use them against four
            // inputs at a time (each loaded value then feeds several products).
            var scratch: UnsafeMutablePointer<Float>? = nil
            if n > 1 { scratch = .allocate(capacity: 2 * columns) }
            defer { scratch?.deallocate() }
            var base = 0
            for (matrix, out) in jobs {
                let lower = max(range.lowerBound, base) - base
                let upper = min(range.upperBound, base + matrix.rows) - base
                base += matrix.rows
                guard lower < upper else { continue }
                let rows = matrix.rows
                if let scratch {
                    var r = lower
                    while r < upper {
                        let pair = r + 1 < upper
                        matrix.dequantizeRow(r, into: scratch)
                        if pair { matrix.dequantizeRow(r + 1, into: scratch + columns) }
                        var t = 0
                        if pair {
                            while t + 4 <= n {
                                let (a, b) = dotFloat2x4(scratch, scratch + columns, input + t * columns, stride: columns, count: columns)
                                for i in 0..<4 {
                                    out[(t + i) * rows + r] = a[i]
                                    out[(t + i) * rows + r + 1] = b[i]
                                }
                                t += 4
                            }
                        } else {
                            while t + 4 <= n {
                                let d = dotFloat4(scratch, input + t * columns, stride: columns, count: columns)
                                for i in 0..<4 { out[(t + i) * rows + r] = d[i] }
                                t += 4
                            }
                        }
                        while t < n {
                            out[t * rows + r] = dotFloat(scratch, input + t * columns, count: columns)
                            if pair { out[t * rows + r + 1] = dotFloat(scratch + columns, input + t * columns, count: columns) }
                            t += 1
                        }
                        r += pair ? 2 : 1
                    }
                } else {
                    for r in lower..<upper {
                        out[r] = matrix.dot(row: r, input, blockSums: sums)
                    }
                }
            }
        }
    }

    /// Rotates each head's leading `ropeDimensions` values in adjacent pairs (GGUF's permuted
    /// Q/K layout, llama.cpp's "normal" RoPE).
    private func rope(_ vector: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let headDimension = model.hyperparameters.headDimension
        let frequencies = model.inverseFrequencies
        let p = Float(position)
        for i in 0..<frequencies.count {
            let angle = p * frequencies[i]
            let c = cos(angle), s = sin(angle)
            for head in 0..<heads {
                let v = vector + head * headDimension + 2 * i
                let a = v[0], b = v[1]
                v[0] = a * c - b * s
                v[1] = a * s + b * c
            }
        }
    }

    /// Attention for one new token at `position` (generation): the cached positions are split
    /// between the threads, each computes every head over its share with its own running maximum
    /// (weights relative to it, their sum and the weighted values), and the shares are merged by
    /// rescaling to the overall maximum. Splitting positions rather than heads keeps both threads
    /// equally busy (nine heads do not split evenly in two).
    private func attendOne(layer: Int, position: Int) {
        let h = model.hyperparameters
        let headDimension = h.headDimension
        let kvDim = h.kvDimension
        let heads = h.headCount
        let group = heads / h.kvHeadCount
        let scale = 1 / Float(headDimension).squareRoot()
        let keys = UnsafePointer(self.keys + layer * contextLength * kvDim)
        let values = UnsafePointer(self.values + layer * contextLength * kvDim)
        let q = UnsafePointer(self.q)
        let length = position + 1
        let chunks = min(parallel.threads, length)
        let stride = headDimension + 2
        let partials = self.partials
        parallel.forEachSlice(chunks) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: length)
            defer { scores.deallocate() }
            for chunk in range {
                let lower = length * chunk / chunks, upper = length * (chunk + 1) / chunks
                for head in 0..<heads {
                    let kvOffset = (head / group) * headDimension
                    let query = q + head * headDimension
                    var maximum = -Float.infinity
                    for j in lower..<upper {
                        let s = dotHalf(query, keys + j * kvDim + kvOffset, count: headDimension) * scale
                        scores[j] = s
                        maximum = max(maximum, s)
                    }
                    let slot = partials + (chunk * heads + head) * stride
                    let out = slot + 2
                    out.update(repeating: 0, count: headDimension)
                    let total = exponentiate(scores + lower, count: upper - lower, minus: maximum)
                    for j in lower..<upper {
                        accumulate(values + j * kvDim + kvOffset, weight: scores[j], into: out, count: headDimension)
                    }
                    slot[0] = maximum
                    slot[1] = total
                }
            }
        }
        for head in 0..<heads {
            var maximum = -Float.infinity
            for chunk in 0..<chunks { maximum = max(maximum, partials[(chunk * heads + head) * stride]) }
            let out = attention + head * headDimension
            out.update(repeating: 0, count: headDimension)
            var total: Float = 0
            for chunk in 0..<chunks {
                let slot = partials + (chunk * heads + head) * stride
                let factor = exp(slot[0] - maximum)
                total += slot[1] * factor
                accumulate(slot + 2, weight: factor, into: out, count: headDimension)
            }
            let inverse = 1 / total
            for d in 0..<headDimension { out[d] *= inverse }
        }
    }

    /// Causal attention for `n` new tokens starting at position `start`, writing `attention`.
    private func attend(layer: Int, n: Int, start: Int) {
        let h = model.hyperparameters
        let headDimension = h.headDimension
        let kvDim = h.kvDimension
        let dim = h.embeddingLength
        let group = h.headCount / h.kvHeadCount
        let scale = 1 / Float(headDimension).squareRoot()
        let keys = UnsafePointer(self.keys + layer * contextLength * kvDim)
        let values = UnsafePointer(self.values + layer * contextLength * kvDim)
        let q = UnsafePointer(self.q)
        let attention = self.attention
        let capacity = start + n
        parallel.forEachSlice(n * h.headCount) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
            defer { scores.deallocate() }
            for job in range {
                let t = job / h.headCount
                let head = job % h.headCount
                let kvHead = head / group
                let query = q + t * dim + head * headDimension
                let length = start + t + 1
                var maximum = -Float.infinity
                for j in 0..<length {
                    let s = dotHalf(query, keys + j * kvDim + kvHead * headDimension, count: headDimension) * scale
                    scores[j] = s
                    maximum = max(maximum, s)
                }
                let total = exponentiate(scores, count: length, minus: maximum)
                let out = attention + t * dim + head * headDimension
                out.update(repeating: 0, count: headDimension)
                let inverse = 1 / total
                for j in 0..<length {
                    let w = scores[j] * inverse
                    accumulate(values + j * kvDim + kvHead * headDimension, weight: w, into: out, count: headDimension)
                }
            }
        }
    }
}

@inline(__always)
func rmsNorm(_ x: UnsafeMutablePointer<Float>, weight: [Float], out: UnsafeMutablePointer<Float>, count: Int, epsilon: Float) {
    let meanSquare = dotFloat(x, x, count: count) / Float(count)
    let scale = 1 / (meanSquare + epsilon).squareRoot()
    weight.withUnsafeBufferPointer { w in
        for i in 0..<count {
            out[i] = x[i] * scale * w[i]
        }
    }
}

/// `gate[i] = silu(gate[i]) · up[i]` (silu(g) = g / (1 + e⁻ᵍ)), sixteen lanes at a time.
@inline(__always)
func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
    var i = 0
    let g = UnsafeMutableRawPointer(gate), u = UnsafeRawPointer(up)
    while i + 16 <= count {
        let x = g.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        let y = x / (1 + exponential(-x)) * u.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        g.storeBytes(of: y, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    while i < count {
        gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]
        i += 1
    }
}

/// Replaces each of `count` values by e^(value − `maximum`) and returns their sum (a softmax's
/// numerators and denominator).
@inline(__always)
func exponentiate(_ values: UnsafeMutablePointer<Float>, count: Int, minus maximum: Float) -> Float {
    var i = 0
    let raw = UnsafeMutableRawPointer(values)
    var sums = SIMD16<Float>()
    while i + 16 <= count {
        let e = exponential(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) - maximum)
        raw.storeBytes(of: e, toByteOffset: 4 * i, as: SIMD16<Float>.self)
        sums += e
        i += 16
    }
    var total = horizontalSum(sums)
    while i < count {
        values[i] = exp(values[i] - maximum)
        total += values[i]
        i += 1
    }
    return total
}

/// What the KV cache holds: half precision, except on Intel Macs, whose Swift has no `Float16`
/// (there the cache stays in single precision).
#if os(macOS) && arch(x86_64)
typealias CacheScalar = Float
@inline(__always)
func floats(_ v: SIMD16<Float>) -> SIMD16<Float> { v }
#else
typealias CacheScalar = Float16
#endif

/// `out += weight · value` over `count` values (half precision, widened as they are read).
@inline(__always)
func accumulate(_ value: UnsafePointer<CacheScalar>, weight: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
    var d = 0
    while d + 16 <= count {
        let o = UnsafeMutableRawPointer(out + d)
        let v = floats(UnsafeRawPointer(value + d).loadUnaligned(as: SIMD16<CacheScalar>.self))
        o.storeBytes(of: multiplyAdd(o.loadUnaligned(as: SIMD16<Float>.self), v, SIMD16(repeating: weight)), as: SIMD16<Float>.self)
        d += 16
    }
    while d < count {
        out[d] += Float(value[d]) * weight
        d += 1
    }
}

/// Dot product of floats with half-precision values, accumulated in single precision.
@inline(__always)
func dotHalf(_ a: UnsafePointer<Float>, _ b: UnsafePointer<CacheScalar>, count: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
        acc = multiplyAdd(acc, x, floats(UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<CacheScalar>.self)))
        i += 16
    }
    var sum = horizontalSum(acc)
    while i < count {
        sum += a[i] * Float(b[i])
        i += 1
    }
    return sum
}

/// Rounds `count` floats to half precision (to nearest, ties to even).
@inline(__always)
func toHalf(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<CacheScalar>, count: Int) {
    for i in 0..<count { target[i] = CacheScalar(source[i]) }
}

/// `out += weight · value` over `count` floats.
@inline(__always)
func accumulate(_ value: UnsafePointer<Float>, weight: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
    var d = 0
    while d + 16 <= count {
        let o = UnsafeMutableRawPointer(out + d)
        let acc = multiplyAdd(o.loadUnaligned(as: SIMD16<Float>.self), UnsafeRawPointer(value + d).loadUnaligned(as: SIMD16<Float>.self), SIMD16(repeating: weight))
        o.storeBytes(of: acc, as: SIMD16<Float>.self)
        d += 16
    }
    while d < count {
        out[d] += value[d] * weight
        d += 1
    }
}

@inline(__always)
func add(_ source: UnsafeMutablePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count {
        target[i] += source[i]
    }
}
