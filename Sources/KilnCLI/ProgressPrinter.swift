import Foundation
import Stages

/// Prints execution progress: an updating line on a terminal, plain lines otherwise.
final class ProgressPrinter: ExecutionObserver, @unchecked Sendable {
    private let lock = NSLock()
    private let terminal = CLI.isTerminal
    private var lastSourcesPrint = Date.distantPast

    func event(_ event: ExecutionEvent) {
        lock.withLock {
            switch event {
            case .pipelineCached(let name):
                line("\(name): cached")
            case .pipelineStarted(let name, let stages, let restored):
                line(restored > 0 ? "\(name): \(stages) stages, resuming after stage \(restored) (checkpoint)" : "\(name): \(stages) stages")
            case .sources(let done, let total, let bytes):
                let mb = String(format: "%.1f MB", Double(bytes) / 1e6)
                if terminal {
                    status("sources \(done)/\(total) (\(mb))")
                    if done == total { line("sources: \(total) files, \(mb), verified") }
                } else if done == total || Date().timeIntervalSince(lastSourcesPrint) > 5 {
                    lastSourcesPrint = Date()
                    line("sources \(done)/\(total) (\(mb))")
                }
            case .stageStarted(let pipeline, let index, let count, let type):
                if terminal { status("\(pipeline) [\(index + 1)/\(count)] \(type) …") } else { line("\(pipeline) [\(index + 1)/\(count)] \(type)") }
            case .stageFinished(let pipeline, let index, let count, let type, let seconds):
                if terminal {
                    line("\(pipeline) [\(index + 1)/\(count)] \(type) \(String(format: "%.1f s", seconds))")
                } else if seconds >= 1 {
                    line("  done in \(String(format: "%.1f s", seconds))")
                }
            case .checkpointStored(let pipeline, let index):
                line("\(pipeline): checkpoint stored after stage \(index + 1)")
            case .pipelineFinished(let name, let seconds):
                line("\(name): finished in \(String(format: "%.1f s", seconds))")
            }
        }
    }

    private func status(_ s: String) {
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + s).utf8))
    }

    private func line(_ s: String) {
        FileHandle.standardError.write(Data(((terminal ? "\r\u{1B}[K" : "") + s + "\n").utf8))
    }
}
