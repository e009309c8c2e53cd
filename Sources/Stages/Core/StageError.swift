/// A stage that could not do its work. Each case carries what a person needs to act.
package enum StageError: Error, Sendable, CustomStringConvertible {
    /// A program exited non-zero.
    case commandFailed(command: [String], status: String, tail: String)
    /// A program could not be started at all.
    case commandNotFound(command: String, reason: String)
    /// A path in the tree is outside the tree or of the wrong kind.
    case badPath(path: String, reason: String)
    /// An input the stage needs is missing or of the wrong kind.
    case missingInput(stage: String, name: String)
    /// A device the stage needs is missing or malformed.
    case missingDevice(stage: String, name: String)
    /// The tree does not contain what the stage expects.
    case treeInconsistent(reason: String)
    /// Options that decode but make no sense together.
    case invalidOptions(reason: String)
    /// argv[0] is not a host program Kiln runs (a path, or a name from outside).
    case programNotAllowed(program: String, allowed: [String])

    /// A command line short enough to read: long argument lists are cut.
    static func abbreviate(_ command: [String]) -> String {
        guard command.count > 12 else { return command.joined(separator: " ") }
        return command.prefix(10).joined(separator: " ") + " … (\(command.count - 10) more arguments)"
    }

    /// How a failed command is named: a sandboxed one by the program it ran
    /// in the sandbox (its `bwrap` options say nothing to a user), with what
    /// that program could not reach, for a maintainer script that wanted the
    /// network or a host file.
    static func named(_ command: [String]) -> String {
        guard command.first == "bwrap", let end = command.firstIndex(of: "--"), end + 1 < command.count else {
            return "`\(abbreviate(command))`"
        }
        return "`\(abbreviate(Array(command[(end + 1)...])))` (in the build's sandbox: no network, no host files; "
            + "docs/operating.md, \"Sandboxed stages\")"
    }

    package var description: String {
        switch self {
        case .commandFailed(let command, let status, let tail):
            Self.named(command) + " \(status)" + (tail.isEmpty ? "" : "; last output:\n\(tail)")
        case .commandNotFound(let command, let reason):
            "cannot run \(command): \(reason); run ops/install-deps"
        case .badPath(let path, let reason):
            "\(path): \(reason)"
        case .missingInput(let stage, let name):
            "\(stage): input \"\(name)\" is missing or of the wrong type"
        case .missingDevice(let stage, let name):
            "\(stage): device \"\(name)\" is missing or has no filename"
        case .treeInconsistent(let reason):
            reason
        case .invalidOptions(let reason):
            reason
        case .programNotAllowed(let program, let allowed):
            "refused to run \"\(program)\": Kiln runs only these host programs, by name: \(allowed.joined(separator: ", ")); a program is never chosen by a manifest or a tree"
        }
    }
}
