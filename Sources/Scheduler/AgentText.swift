/// Text that a peer chose (an agent's log lines, stage types, failure
/// reasons; a client's label) cut to size before it reaches SQLite or the
/// daemon's log. Log lines are kept as the stage wrote them, only shortened;
/// short fields also lose control characters.
package enum AgentText {
    package struct Limits: Sendable {
        /// Bytes of one log line; the rest is replaced by a marker.
        package var lineBytes = 4 << 10
        /// Bytes of the log lines of one message; later lines are dropped.
        package var messageBytes = 64 << 10
        /// Bytes of log text kept per build; past it, one "log truncated" event.
        package var buildBytes = 16 << 20
        package init() {}
    }

    /// Bytes of a short field (stage type, pipeline name, agent version).
    package static let fieldBytes = 256
    /// Bytes of a failure reason.
    package static let reasonBytes = 4 << 10
    /// Bytes of a client's label.
    package static let labelBytes = 512

    /// `text` cut to at most `limit` bytes of UTF-8, between two scalars.
    package static func prefix(_ text: String, bytes limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        let scalars = text.unicodeScalars
        var used = 0
        var end = scalars.startIndex
        while end < scalars.endIndex {
            let width = scalars[end].utf8.count
            if used + width > limit { break }
            used += width
            end = scalars.index(after: end)
        }
        return String(scalars[..<end])
    }

    /// A short field: printable, at most `fieldBytes`.
    package static func field(_ text: String, bytes limit: Int = fieldBytes) -> String {
        printable(prefix(text, bytes: limit))
    }

    /// A failure reason: kept as one line per line, at most `reasonBytes` in all.
    package static func reason(_ text: String) -> String {
        let cut = prefix(text, bytes: reasonBytes)
        return cut.utf8.count < text.utf8.count ? cut + " … (cut at \(reasonBytes) bytes)" : cut
    }

    /// One message's log lines within `limits`: each line at most
    /// `lineBytes`, all of them at most `messageBytes`; what is cut is said.
    package static func lines(_ lines: [String], _ limits: Limits) -> [String] {
        var out: [String] = []
        var total = 0
        for (i, line) in lines.enumerated() {
            var l = line
            if l.utf8.count > limits.lineBytes {
                l = prefix(l, bytes: limits.lineBytes) + " … (line cut at \(limits.lineBytes) bytes)"
            }
            if total + l.utf8.count > limits.messageBytes {
                out.append("… \(lines.count - i) more line(s) dropped: a message carries at most \(limits.messageBytes) bytes of log")
                break
            }
            total += l.utf8.count + 1
            out.append(l)
        }
        return out
    }

    /// A peer's text as one printable line: control characters (terminal
    /// escapes among them), format characters (bidi overrides) and line or
    /// paragraph separators become spaces.
    package static func printable(_ text: String) -> String {
        let hidden: Set<Unicode.GeneralCategory> = [.control, .format, .lineSeparator, .paragraphSeparator]
        guard text.unicodeScalars.contains(where: { hidden.contains($0.properties.generalCategory) }) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { hidden.contains($0.properties.generalCategory) ? " " : $0 }))
    }
}
