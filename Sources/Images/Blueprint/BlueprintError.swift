/// Why a blueprint was rejected: the file, the key path inside it (for example
/// `customizations.user[1].groups`), the line when it could be found, and what
/// to do about it.
package struct BlueprintError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The blueprint file as the user named it.
    package var file: String
    /// Dotted key path with 0-based array indices; empty for the whole document.
    package var keyPath: String
    /// 1-based line in a TOML file, when the key could be found in the text.
    package var line: Int?
    package var problem: Problem

    package enum Problem: Sendable, Equatable {
        /// The text is not valid TOML or JSON.
        case syntax(format: String, reason: String)
        /// A value has the wrong type.
        case wrongType(expected: String, found: String)
        /// A key this blueprint format does not have.
        case unknownKey(allowed: [String])
        /// An osbuild-composer key or value that Kiln does not implement or that cannot apply to Debian; `fix` says why and what to do instead.
        case unsupported(fix: String)
        /// A required key is absent.
        case missing(fix: String)
        /// A value is present but not acceptable; `reason` says why and how to fix it.
        case invalid(reason: String)
        /// A name given twice.
        case duplicate(name: String, firstAt: String)
    }

    package init(file: String, keyPath: String, line: Int? = nil, problem: Problem) {
        self.file = file
        self.keyPath = keyPath
        self.line = line
        self.problem = problem
    }

    package var description: String {
        var where_ = file
        if let line { where_ += ":\(line)" }
        if !keyPath.isEmpty { where_ += ": \(keyPath)" }
        return "\(where_): \(message)"
    }

    /// The message without the location.
    package var message: String {
        switch problem {
        case .syntax(let format, let reason):
            return "not valid \(format): \(reason)"
        case .wrongType(let expected, let found):
            return "must be \(expected), found \(found)"
        case .unknownKey(let allowed):
            let tail = keyPath.split(separator: ".").last.map(String.init) ?? keyPath
            let name = tail.split(separator: "[").first.map(String.init) ?? tail
            var m = "unknown key \"\(name)\""
            if let close = allowed.first(where: { $0.lowercased() == name.lowercased() || $0.replacingOccurrences(of: "_", with: "-") == name || $0.replacingOccurrences(of: "_", with: "") == name })
            {
                m += "; did you mean \"\(close)\"?"
            } else if !allowed.isEmpty {
                m += "; expected one of: \(allowed.joined(separator: ", "))"
            }
            return m
        case .unsupported(let fix):
            return "not supported in this version of Kiln; \(fix)"
        case .missing(let fix):
            return "missing; \(fix)"
        case .invalid(let reason):
            return reason
        case .duplicate(let name, let firstAt):
            return "\"\(name)\" is already defined at \(firstAt); give each a different name or remove one"
        }
    }
}
