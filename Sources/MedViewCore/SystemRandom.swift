#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Random bytes from the operating system's generator, any number of them in one system call.
///
/// Swift's `SystemRandomNumberGenerator` asks the kernel for 8 bytes at a time, so a 12-byte
/// AES-GCM nonce cost two `getrandom` calls and a 130-bit id three: about 40 system calls an
/// answer, each sealed field and each id its own (issue 16, stop 32). Here one `read` of the
/// kernel's `/dev/urandom` fills the whole buffer. That is the generator `getrandom` reads; on
/// kernels before 5.18 it does not wait for the generator to be seeded at boot, so the device is
/// opened only after one draw from `SystemRandomNumberGenerator` (whose `getrandom` call waits
/// for it). Nothing is kept in this process between calls, so a forked or cloned process never
/// repeats bytes it was given before.
///
/// Where `/dev/urandom` cannot be opened or read (a sandbox without it), the bytes come from
/// `SystemRandomNumberGenerator`, as before.
public enum SystemRandom {
    /// `/dev/urandom`, opened once (close-on-exec) and read by every thread; -1 when unavailable.
    private static let device: Int32 = {
        #if os(Linux)
        // Returns once the kernel's generator is seeded (it stays seeded from then on).
        var generator = SystemRandomNumberGenerator()
        _ = generator.next() as UInt64
        return open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        #else
        return -1
        #endif
    }()

    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var done = 0
        if device >= 0 {
            while done < buffer.count {
                let n = read(device, base + done, buffer.count - done)
                if n > 0 {
                    done += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
        }
        guard done < buffer.count else { return }
        var generator = SystemRandomNumberGenerator()
        var word: UInt64 = 0
        for i in done..<buffer.count {
            if (i - done) % 8 == 0 { word = generator.next() }
            buffer[i] = UInt8(truncatingIfNeeded: word >> UInt64(((i - done) % 8) * 8))
        }
    }

    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(0, count))
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }
}
