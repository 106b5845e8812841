import Dispatch
import Foundation
import Synchronization

/// IEEE half → single precision for every one of the 65,536 bit patterns (256 KiB, built once).
/// Written once when first used, then only read.
nonisolated(unsafe) let halfToFloatTable: UnsafeMutablePointer<Float> = {
    let table = UnsafeMutablePointer<Float>.allocate(capacity: 65_536)
    for bits in 0...UInt16.max {
        table[Int(bits)] = Float(halfBitsToFloat(bits))
    }
    return table
}()

/// Converts IEEE 754 binary16 bits to a Float without relying on platform `Float16` support.
func halfBitsToFloat(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x03FF)
    if exponent == 0 {
        // Zero or subnormal: mantissa × 2^-24.
        let value = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign == 0 ? value : -value
    }
    if exponent == 31 {
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

/// A 2-D weight tensor read in place from the model file: `rows` rows of `columns` values each,
/// stored in one of the supported ggml formats.
///
/// Block layouts (ggml): Q4_1 = 32 weights in 20 bytes (f16 scale d, f16 minimum m, 16 bytes of
/// nibbles: byte j holds weight j in its low nibble and weight j+16 in its high nibble; weight =
/// q·d + m). Q8_0 = 32 weights in 34 bytes (f16 scale d, 32 signed bytes; weight = q·d).
public struct WeightMatrix: @unchecked Sendable {
    /// The formats this engine computes with.
    public static let supportedTypes: Set<GGMLType> = [.f32, .f16, .q4_1, .q8_0]

    public let type: GGMLType
    public let rows: Int
    public let columns: Int
    let base: UnsafeRawPointer
    let rowBytes: Int
    /// ``halfToFloatTable``, read once here rather than through the global's accessor on every row.
    let halfTable: UnsafePointer<Float>

    /// Wraps raw tensor bytes; `bytes` must hold `rows` × `columns` values of `type`.
    public init(type: GGMLType, rows: Int, columns: Int, bytes: UnsafeRawBufferPointer) throws(LocalModelError) {
        guard Self.supportedTypes.contains(type) else { throw .unsupportedTensorType(type.rawValue) }
        guard rows > 0, columns > 0, columns % type.blockSize == 0 else { throw .shapeMismatch("weight matrix \(rows)x\(columns)") }
        let rowBytes = columns / type.blockSize * type.blockBytes
        guard bytes.count >= rowBytes * rows, let base = bytes.baseAddress else { throw .shapeMismatch("weight matrix data size") }
        halfTable = UnsafePointer(halfToFloatTable)
        self.type = type
        self.rows = rows
        self.columns = columns
        self.base = base
        self.rowBytes = rowBytes
    }

    /// Writes row `row`, dequantised, into `out` (`columns` floats).
    public func dequantizeRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        let p = base + row * rowBytes
        let h = halfTable
        switch type {
        case .f32:
            out.update(from: p.assumingMemoryBound(to: Float.self), count: columns)
        case .f16:
            for i in 0..<columns {
                out[i] = h[Int(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))]
            }
        case .q4_1:
            for b in 0..<(columns / 32) {
                let block = p + b * 20
                let d = h[Int(block.loadUnaligned(as: UInt16.self))]
                let m = h[Int(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))]
                let q = block.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
                let lo = floats(q & 0x0F) * d + m
                let hi = floats(q &>> 4) * d + m
                let o = UnsafeMutableRawPointer(out + b * 32)
                o.storeBytes(of: lo, as: SIMD16<Float>.self)
                o.storeBytes(of: hi, toByteOffset: 64, as: SIMD16<Float>.self)
            }
        case .q8_0:
            for b in 0..<(columns / 32) {
                let block = p + b * 34
                let d = h[Int(block.loadUnaligned(as: UInt16.self))]
                let q0 = block.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
                let q1 = block.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
                let o = UnsafeMutableRawPointer(out + b * 32)
                o.storeBytes(of: floats(q0) * d, as: SIMD16<Float>.self)
                o.storeBytes(of: floats(q1) * d, toByteOffset: 64, as: SIMD16<Float>.self)
            }
        default:
            preconditionFailure("checked in init")
        }
    }

    /// The dot product of row `row` with `x` (`columns` floats). `blockSums` holds the sum of
    /// each 32-value block of `x` (needed by Q4_1's minimum term; ignored otherwise).
    @inline(__always)
    public func dot(row: Int, _ x: UnsafePointer<Float>, blockSums: UnsafePointer<Float>) -> Float {
        let p = base + row * rowBytes
        let h = halfTable
        switch type {
        case .q4_1:
            var acc = SIMD16<Float>()
            var minimum: Float = 0
            for b in 0..<(columns / 32) {
                let block = p + b * 20
                let d = h[Int(block.loadUnaligned(as: UInt16.self))]
                let m = h[Int(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))]
                let q = block.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
                let xb = UnsafeRawPointer(x + b * 32)
                let x0 = xb.loadUnaligned(as: SIMD16<Float>.self)
                let x1 = xb.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
                let s = multiplyAdd(floats(q & 0x0F) * x0, floats(q &>> 4), x1)
                acc = multiplyAdd(acc, s, SIMD16(repeating: d))
                minimum += m * blockSums[b]
            }
            return horizontalSum(acc) + minimum
        case .q8_0:
            #if MEDVIEW_AVX512
            // Sixteen lanes: one 512-bit widening, conversion and multiply-add per half block.
            var acc = SIMD16<Float>()
            for b in 0..<(columns / 32) {
                let block = p + b * 34
                let d = h[Int(block.loadUnaligned(as: UInt16.self))]
                let xb = UnsafeRawPointer(x + b * 32)
                var s = floats(block.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)) * xb.loadUnaligned(as: SIMD16<Float>.self)
                s = multiplyAdd(s, floats(block.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)), xb.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
                acc = multiplyAdd(acc, s, SIMD16(repeating: d))
            }
            return horizontalSum(acc)
            #else
            // Eight lanes at a time: the conversions then compile to single widening instructions
            // (sixteen-lane conversions of signed bytes are scalarised for AVX2).
            var acc = SIMD8<Float>()
            for b in 0..<(columns / 32) {
                let block = p + b * 34
                let d = h[Int(block.loadUnaligned(as: UInt16.self))]
                let xb = UnsafeRawPointer(x + b * 32)
                var s = floats(block.loadUnaligned(fromByteOffset: 2, as: SIMD8<Int8>.self)) * xb.loadUnaligned(as: SIMD8<Float>.self)
                s = multiplyAdd(s, floats(block.loadUnaligned(fromByteOffset: 10, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                s = multiplyAdd(s, floats(block.loadUnaligned(fromByteOffset: 18, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
                s = multiplyAdd(s, floats(block.loadUnaligned(fromByteOffset: 26, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
                acc = multiplyAdd(acc, s, SIMD8(repeating: d))
            }
            return horizontalSum(acc)
            #endif
        case .f32:
            return dotFloat(p.assumingMemoryBound(to: Float.self), x, count: columns)
        case .f16:
            var sum: Float = 0
            for i in 0..<columns {
                sum += h[Int(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))] * x[i]
            }
            return sum
        default:
            preconditionFailure("checked in init")
        }
    }
}

/// `a + b·c` lane by lane: one fused instruction where the build targets FMA hardware
/// (`MEDVIEW_FMA`, set by Package.swift with the native CPU flags), a multiply and an add otherwise
/// (a fused multiply-add without the hardware would be a library call per lane).
@inline(__always)
func multiplyAdd(_ a: SIMD16<Float>, _ b: SIMD16<Float>, _ c: SIMD16<Float>) -> SIMD16<Float> {
    #if MEDVIEW_FMA
    a.addingProduct(b, c)
    #else
    a + b * c
    #endif
}

@inline(__always)
func multiplyAdd(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>) -> SIMD8<Float> {
    #if MEDVIEW_FMA
    a.addingProduct(b, c)
    #else
    a + b * c
    #endif
}

/// eˣ for sixteen lanes, within a few units in the last place of the C library's `expf`:
/// x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 split in two parts so that r is exact), eʳ by its
/// Taylor series to r⁷ (truncation error below 1e-8 relative on that interval), and 2ⁿ written
/// into the exponent bits. Inputs are clamped to [-87.3, 88], so results lie between about 1.2e-38
/// and 1.65e38 (never 0 or infinity), which is all a softmax or SiLU needs.
@inline(__always)
func exponential(_ x: SIMD16<Float>) -> SIMD16<Float> {
    var v = x
    for i in 0..<16 { v[i] = min(max(v[i], -87.3), 88) }
    // Adding 1.5·2²³ rounds to an integer (ties to even) held in the low mantissa bits.
    let shifter: Float = 12_582_912
    let t = v * 1.442_695_04 + shifter
    let n = t - shifter
    let r = v - n * 0.693_359_375 - n * -2.121_944_4e-4
    var p = r * (1 / 5040) + 1 / 720
    p = p * r + 1 / 120
    p = p * r + 1 / 24
    p = p * r + 1 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let exponent = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- Int32(bitPattern: shifter.bitPattern) &+ 127) &<< 23
    return p * unsafeBitCast(exponent, to: SIMD16<Float>.self)
}

/// The sum of the lanes, added pairwise (halves first) rather than one lane after another: a
/// shorter chain of dependent additions than `sum()`, which keeps the order strictly sequential.
@inline(__always)
func horizontalSum(_ v: SIMD16<Float>) -> Float {
    horizontalSum(v.lowHalf + v.highHalf)
}

@inline(__always)
func horizontalSum(_ v: SIMD8<Float>) -> Float {
    let four = v.lowHalf + v.highHalf
    let two = four.lowHalf + four.highHalf
    return two.x + two.y
}

/// Dot product of two float vectors.
@inline(__always)
func dotFloat(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 16 <= count {
        acc += ra.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
        i += 16
    }
    var sum = horizontalSum(acc)
    while i < count {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}

/// Eight dot products: each of `w0` and `w1` with four vectors `stride` apart, in one pass over
/// all six (each load feeds two or four products); `count` must be a multiple of 16.
@inline(__always)
func dotFloat2x4(_ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>, _ x: UnsafePointer<Float>, stride: Int, count: Int) -> (SIMD4<Float>, SIMD4<Float>) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var b0 = SIMD16<Float>(), b1 = SIMD16<Float>(), b2 = SIMD16<Float>(), b3 = SIMD16<Float>()
    let rw0 = UnsafeRawPointer(w0), rw1 = UnsafeRawPointer(w1)
    let r0 = UnsafeRawPointer(x), r1 = UnsafeRawPointer(x + stride), r2 = UnsafeRawPointer(x + 2 * stride), r3 = UnsafeRawPointer(x + 3 * stride)
    var offset = 0
    let end = count * 4
    while offset < end {
        let u = rw0.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        let v = rw1.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        let x0 = r0.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        let x1 = r1.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        let x2 = r2.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        let x3 = r3.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        a0 = multiplyAdd(a0, u, x0)
        a1 = multiplyAdd(a1, u, x1)
        a2 = multiplyAdd(a2, u, x2)
        a3 = multiplyAdd(a3, u, x3)
        b0 = multiplyAdd(b0, v, x0)
        b1 = multiplyAdd(b1, v, x1)
        b2 = multiplyAdd(b2, v, x2)
        b3 = multiplyAdd(b3, v, x3)
        offset += 64
    }
    return (SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3)),
            SIMD4(horizontalSum(b0), horizontalSum(b1), horizontalSum(b2), horizontalSum(b3)))
}

/// Four dot products of `w` with four vectors `stride` apart (one pass over `w`); `count` must be
/// a multiple of 16.
@inline(__always)
func dotFloat4(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, stride: Int, count: Int) -> SIMD4<Float> {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    let rw = UnsafeRawPointer(w)
    let r0 = UnsafeRawPointer(x), r1 = UnsafeRawPointer(x + stride), r2 = UnsafeRawPointer(x + 2 * stride), r3 = UnsafeRawPointer(x + 3 * stride)
    var offset = 0
    let end = count * 4
    while offset < end {
        let wv = rw.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        a0 = multiplyAdd(a0, wv, r0.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self))
        a1 = multiplyAdd(a1, wv, r1.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self))
        a2 = multiplyAdd(a2, wv, r2.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self))
        a3 = multiplyAdd(a3, wv, r3.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self))
        offset += 64
    }
    return SIMD4(horizontalSum(a0), horizontalSum(a1), horizontalSum(a2), horizontalSum(a3))
}

/// Sums of each 32-value block of `x` (`count` must be a multiple of 32).
@inline(__always)
func blockSums(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    for b in 0..<(count / 32) {
        let xb = UnsafeRawPointer(x + b * 32)
        out[b] = (xb.loadUnaligned(as: SIMD16<Float>.self) + xb.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)).sum()
    }
}

/// Splits row ranges across a fixed set of threads: the caller plus `threads - 1` workers that
/// spin briefly between jobs (a token needs a few hundred short products, too short for a
/// dispatch round trip each) and then park on a condition variable.
final class Parallel: @unchecked Sendable {
    /// Worker count including the calling thread.
    let threads: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let condition = NSCondition()
    private var job: UncheckedBox<(Range<Int>) -> Void>?
    private var count = 0
    private var parts = 1
    private var stopping = false

    init(threads: Int) {
        self.threads = max(1, threads)
        for index in 1..<self.threads {
            let thread = Thread { self.work(index) }  // the worker keeps the pool alive until shutdown()
            thread.name = "medview.local-model.worker"
            thread.start()
        }
    }

    /// Stops the workers; each releases the pool as it exits.
    func shutdown() {
        condition.lock()
        stopping = true
        generation.add(1, ordering: .releasing)
        condition.broadcast()
        condition.unlock()
    }

    /// Runs `body(range)` for contiguous slices of `0..<count`, one per thread, and returns when all are done.
    func forEachSlice(_ count: Int, _ body: (Range<Int>) -> Void) {
        let n = min(threads, count)
        if n <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            condition.lock()
            job = UncheckedBox(body)
            self.count = count
            parts = n
            remaining.store(n - 1, ordering: .relaxed)
            generation.add(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()
            body(0..<(count / n))
            while remaining.load(ordering: .acquiring) > 0 {}
            condition.lock()
            job = nil
            condition.unlock()
        }
    }

    private func work(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins > 4_000 {
                    condition.lock()
                    while generation.load(ordering: .acquiring) == seen { condition.wait() }
                    condition.unlock()
                }
            }
            condition.lock()
            seen = generation.load(ordering: .acquiring)
            let stop = stopping
            var job = self.job
            let count = self.count, parts = self.parts
            condition.unlock()
            if stop { return }
            let mine = job != nil && index < parts
            if mine {
                job!.value((count * index / parts)..<(count * (index + 1) / parts))
            }
            // Drop the reference before reporting done: the caller's closure must not outlive its call.
            job = nil
            if mine { remaining.subtract(1, ordering: .releasing) }
        }
    }
}

/// Carries a value the compiler cannot prove Sendable into the parallel workers.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

// Lane-wise conversions written out so that they inline and vectorise (the standard library's
// generic SIMD conversion initialisers are not inlined, which costs a call per block).

@inline(__always)
func floats(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}

@inline(__always)
func floats(_ v: SIMD16<Int8>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}

@inline(__always)
func floats(_ v: SIMD8<Int8>) -> SIMD8<Float> {
    var r = SIMD8<Float>()
    for i in 0..<8 { r[i] = Float(v[i]) }
    return r
}

#if !(os(macOS) && arch(x86_64))
@inline(__always)
func floats(_ v: SIMD16<Float16>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}
#endif

@inline(__always)
func floats(_ v: SIMD16<Int16>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}

@inline(__always)
func int16s(_ v: SIMD16<UInt8>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    for i in 0..<16 { r[i] = Int16(v[i]) }
    return r
}

@inline(__always)
func int16s(_ v: SIMD16<Int8>) -> SIMD16<Int16> {
    var r = SIMD16<Int16>()
    for i in 0..<16 { r[i] = Int16(v[i]) }
    return r
}
