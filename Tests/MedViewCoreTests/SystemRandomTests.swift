import MedViewCore
import Testing

@Suite struct SystemRandomTests {
    /// Every size is filled whole: no byte is left as it was (for a run of bytes that stays at its
    /// starting value the odds are 1 in 256 per byte, so the checks look at runs, not single bytes).
    @Test(arguments: [1, 12, 26, 4096, 70_000])
    func aBufferIsFilledWhole(count: Int) {
        var zeros = [UInt8](repeating: 0, count: count)
        var ones = [UInt8](repeating: 0xFF, count: count)
        zeros.withUnsafeMutableBytes { SystemRandom.fill($0) }
        ones.withUnsafeMutableBytes { SystemRandom.fill($0) }
        // Had the fill stopped short, the tail would still read 0x00 in one and 0xFF in the other.
        let tail = min(count, 8)
        #expect(zeros.suffix(tail) != [UInt8](repeating: 0, count: tail) || ones.suffix(tail) != [UInt8](repeating: 0xFF, count: tail) || count == 1)
        if count >= 26 {
            #expect(zeros != ones)
            #expect(zeros.suffix(16) != [UInt8](repeating: 0, count: 16))
            #expect(ones.suffix(16) != [UInt8](repeating: 0xFF, count: 16))
        }
    }

    @Test func bytesAreFreshEachTimeAndTakeEveryValue() {
        let first = SystemRandom.bytes(4096)
        let second = SystemRandom.bytes(4096)
        #expect(first.count == 4096 && second.count == 4096)
        #expect(first != second)
        // 4,096 uniform bytes miss a given value with odds of about 1e-7; all 256 are expected.
        #expect(Set(first).count == 256)
        #expect(SystemRandom.bytes(0).isEmpty)
    }
}
