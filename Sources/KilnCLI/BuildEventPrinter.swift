import Foundation
import Manifest
import Protocol

/// Prints a build's events as they arrive: an updating line for running
/// stages on a terminal, plain lines otherwise; log lines with --verbose.
struct BuildEventPrinter {
    let verbose: Bool
    let terminal = CLI.isTerminal
    let start = Date()

    func print(_ e: Kiln_V1_BuildEvent) {
        let t = String(format: "%6.1fs ", Date().timeIntervalSince(start))
        switch e.kind {
        case .log:
            if verbose { for l in e.logLines { line("        \(TerminalText.safe(l))") } }
        case .stageStarted:
            if terminal { status(t + TerminalText.safe(e.message) + " …") } else { line(t + TerminalText.safe(e.message)) }
        case .stageFinished:
            if terminal { status(t + TerminalText.safe(e.message)) } else if verbose { line(t + TerminalText.safe(e.message)) }
            if verbose { for l in e.logLines { line("        \(TerminalText.safe(l))") } }
        case .note:
            line(t + "note: " + TerminalText.safe(e.message))
        default:
            line(t + TerminalText.safe(e.message))
        }
    }

    private func status(_ s: String) {
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + s).utf8))
    }

    private func line(_ s: String) {
        FileHandle.standardError.write(Data(((terminal ? "\r\u{1B}[K" : "") + s + "\n").utf8))
    }
}

extension SchedulerClient {
    /// Follows a build to its end, printing events; returns its final status.
    func wait(_ buildID: String, printer: BuildEventPrinter) async throws -> Kiln_V1_BuildStatus {
        try await logs(buildID, follow: true) { printer.print($0) }
        guard let s = try await status(buildID).first else { throw ClientError.unexpected("no status for \(buildID)") }
        return s
    }

    /// Fetches the build's artifacts: one artifact to `output` (a file), or
    /// several into `output` (a directory).
    func fetchAll(_ status: Kiln_V1_BuildStatus, to output: String, only: String? = nil) async throws -> [String] {
        let names = only.map { [$0] } ?? status.artifacts
        guard !names.isEmpty else { throw ClientError.unexpected("build \(status.buildID) has no artifacts") }
        var written: [String] = []
        var isDir: ObjCBool = false
        let intoDir = names.count > 1 || (FileManager.default.fileExists(atPath: output, isDirectory: &isDir) && isDir.boolValue)
        if intoDir { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) }
        for name in names {
            guard TerminalText.isPlainFileName(name) else {
                throw ClientError.unexpected(
                    "the scheduler named an artifact \"\(TerminalText.safe(name))\", which is not a plain file name; nothing was written")
            }
            let dest = intoDir ? "\(output)/\(name)" : output
            let parent = (dest as NSString).deletingLastPathComponent
            if !parent.isEmpty { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
            var last = Date.distantPast
            try await fetch(status.buildID, artifact: name, to: dest) { done, total in
                if CLI.isTerminal, Date().timeIntervalSince(last) > 0.2 || done == total {
                    last = Date()
                    FileHandle.standardError.write(
                        Data(
                            String(
                                format: "\r\u{1B}[Kfetching %@: %.0f / %.0f MB", name,
                                Double(done) / 1e6, Double(total) / 1e6
                            ).utf8))
                }
            }
            if CLI.isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            written.append(dest)
        }
        return written
    }
}
