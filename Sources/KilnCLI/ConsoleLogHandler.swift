import ArgumentParser
import Foundation
import Logging

/// Log lines for people: `  message (key=value, …)` on stderr, warnings and
/// errors always, info with `--verbose`.
struct ConsoleLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level

    init(level: Logger.Level) { logLevel = level }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, b in b } }
        let details = all.isEmpty ? "" : " (" + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")"
        let prefix = event.level >= .warning ? "\(event.level): " : "  "
        let line = (CLI.isTerminal ? "\r\u{1B}[K" : "") + prefix + "\(event.message)\(details)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

enum Logging {
    /// The logger commands use; `verbose` shows info-level detail (phases, timings).
    static func logger(verbose: Bool) -> Logger {
        logger(level: verbose ? .info : .warning)
    }

    static func logger(level: Logger.Level) -> Logger {
        Logger(label: "kiln") { _ in ConsoleLogHandler(level: level) }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
