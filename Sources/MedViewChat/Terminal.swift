import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The terminal's output: unbuffered writes, colours only on a terminal, and control characters
/// in server text (escape sequences) removed before they reach the terminal.
public struct Terminal: Sendable {
    public init() {}

    /// Whether standard output is a terminal (then styles are ANSI colours).
    public let colour = isatty(STDOUT_FILENO) == 1

    /// Writes to standard output at once.
    public func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Writes a line to standard output.
    public func line(_ text: String) {
        write(text + "\n")
    }

    /// Writes a line to standard error.
    public func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// `text` in an ANSI style (SGR `codes`) on a terminal, plain otherwise.
    public func styled(_ text: String, _ codes: String) -> String {
        colour ? "\u{1B}[\(codes)m\(text)\u{1B}[0m" : text
    }

    /// Server text with escape sequences and other control characters (but not newlines and tabs) removed.
    public static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.filter { scalar in
            scalar == "\n" || scalar == "\t" || scalar.properties.generalCategory != .control
        }))
    }
}
