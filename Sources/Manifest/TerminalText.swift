/// Text from the farm (agents' log lines, failure reasons, labels, agent
/// names) made safe to print on an operator's terminal.
///
/// A log line is whatever a maintainer script or an agent wrote: an escape
/// sequence in it could retitle the window, move the cursor over earlier
/// output, or on some terminals answer back into the shell. Every control
/// and format character, line and paragraph separator, and the bidirectional
/// overrides are shown as `\u{…}` instead; tabs stay.
package enum TerminalText {
    package static func safe(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control where scalar != "\t", .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse:
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            default:
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// A file name the scheduler gave for an artifact, checked before the
    /// client writes a file under it: one plain component, printable, short.
    package static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= 255 && !name.contains("/")
            && safe(name) == name && !name.hasPrefix("-")
    }
}
