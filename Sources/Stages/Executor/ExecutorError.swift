/// A build that failed while executing a manifest.
package enum ExecutorError: Error, Sendable, CustomStringConvertible {
    /// A stage failed; `log` is the full stage log, `tail` its last lines.
    case stageFailed(pipeline: String, index: Int, count: Int, type: String, reason: String, log: String)
    /// A stage ran past the stage timeout and was stopped (its processes
    /// killed, its mounts released).
    case stageTimedOut(pipeline: String, index: Int, count: Int, type: String, limit: Duration, log: String)
    /// An export names no pipeline of the manifest.
    case unknownExport(name: String, available: [String])

    package var description: String {
        switch self {
        case .stageFailed(let pipeline, let index, let count, let type, let reason, let log):
            "pipeline \(pipeline), stage \(index + 1)/\(count) \(type) failed: \(reason)\nfull log: \(log)"
        case .stageTimedOut(let pipeline, let index, let count, _, _, let log):
            "pipeline \(pipeline), stage \(index + 1)/\(count): \(timeoutReason)\nfull log: \(log)"
        case .unknownExport(let name, let available):
            "--export \(name): no such pipeline; the manifest has \(available.joined(separator: ", "))"
        }
    }

    /// "stage TYPE ran past its LIMIT limit (--stage-timeout)", for a timeout.
    package var timeoutReason: String {
        guard case .stageTimedOut(_, _, _, let type, let limit, _) = self else { return "" }
        return "stage \(type) ran past its \(Self.duration(limit)) limit (--stage-timeout)"
    }

    /// A duration as a person writes it: 1h, 90m, 2s, 1500ms.
    package static func duration(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}
