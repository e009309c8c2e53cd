/// A build that failed while executing a manifest.
package enum ExecutorError: Error, Sendable, CustomStringConvertible {
    /// A stage failed; `log` is the full stage log, `tail` its last lines.
    case stageFailed(pipeline: String, index: Int, count: Int, type: String, reason: String, log: String)
    /// An export names no pipeline of the manifest.
    case unknownExport(name: String, available: [String])

    package var description: String {
        switch self {
        case .stageFailed(let pipeline, let index, let count, let type, let reason, let log):
            "pipeline \(pipeline), stage \(index + 1)/\(count) \(type) failed: \(reason)\nfull log: \(log)"
        case .unknownExport(let name, let available):
            "--export \(name): no such pipeline; the manifest has \(available.joined(separator: ", "))"
        }
    }
}
