#if canImport(Glibc)
import Glibc
#endif

/// Writes one line to standard error.
func printError(_ line: String) {
    fputs(line + "\n", stderr)
}

extension String {
    /// The string right-aligned in a field of `width` characters.
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
