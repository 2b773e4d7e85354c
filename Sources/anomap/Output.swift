import Foundation

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

/// Prints one JSON object on standard output (sorted keys, one line).
func printJSON(_ object: [String: Any]) {
    if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// The closing summary line of a command: coloured on a terminal (unless NO_COLOR is set),
/// plain in logs.
enum Summary {
    /// ANSI colours used for emphasis.
    enum Color: String {
        case red = "31", green = "32", yellow = "33"
    }

    /// One part of the line, with an optional colour.
    static func part(_ text: String, _ color: Color? = nil) -> (String, Color?) { (text, color) }

    /// Whether stderr gets colours.
    static var colors: Bool {
        isatty(fileno(stderr)) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
            && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    /// Writes the parts to stderr, separated by commas, an arrow part by a space (bold label on a terminal).
    static func print(_ parts: [(String, Color?)]) {
        let useColor = colors
        var text = ""
        for (part, color) in parts {
            if !text.isEmpty { text += part.hasPrefix("->") ? " " : ", " }
            text += useColor && color != nil ? "\u{1B}[\(color?.rawValue ?? "0")m\(part)\u{1B}[0m" : part
        }
        printError((useColor ? "\u{1B}[1mdone:\u{1B}[0m " : "done: ") + text)
    }
}
