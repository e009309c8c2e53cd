import Foundation

/// `/etc/default/locale`; a locale other than C/POSIX is enabled in
/// `/etc/locale.gen` and generated with the tree's `locale-gen`.
package struct SystemLocale: Stage {
    package static let type = "org.osbuild.locale"
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        package var language: String
    }

    package init() {}

    static let builtIn: Set<String> = ["C", "C.UTF-8", "C.utf8", "POSIX"]

    package func run(_ options: Options, in context: StageContext) async throws {
        let language = options.language
        guard !language.isEmpty, language.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) else {
            throw StageError.invalidOptions(reason: "\(Self.type): language \"\(language)\" is not a locale name like en_US.UTF-8")
        }
        try TreeFiles.write("LANG=\(language)\n", to: "/etc/default/locale", in: context.tree)
        guard !Self.builtIn.contains(language) else { return }

        guard TreeFiles.exists("/usr/sbin/locale-gen", in: context.tree) else {
            throw StageError.treeInconsistent(reason: "\(Self.type): language \(language) must be generated, but the tree has no locale-gen; add the \"locales\" package")
        }
        let line = try Self.supportedLine(language, in: context.tree)
        let current = try TreeFiles.read("/etc/locale.gen", in: context.tree) ?? ""
        try TreeFiles.write(Self.enable(line, in: current), to: "/etc/locale.gen", in: context.tree)
        try await Chroot(tree: context.tree, commands: context.commands).with { try await $0.run(["locale-gen"]) }
    }

    /// The `/usr/share/i18n/SUPPORTED` line of `language` (e.g. `en_US.UTF-8 UTF-8`).
    static func supportedLine(_ language: String, in tree: String) throws -> String {
        let supported = try TreeFiles.read("/usr/share/i18n/SUPPORTED", in: tree) ?? ""
        for line in supported.split(separator: "\n") where line.split(separator: " ").first.map(String.init) == language {
            return String(line)
        }
        throw StageError.invalidOptions(reason: "\(type): language \"\(language)\" is not in the tree's /usr/share/i18n/SUPPORTED (try e.g. en_US.UTF-8)")
    }

    /// `locale.gen` with `line` uncommented, or appended when absent.
    static func enable(_ line: String, in localeGen: String) -> String {
        var lines = localeGen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var found = false
        for i in lines.indices {
            var l = lines[i]
            while l.hasPrefix("#") { l.removeFirst() }
            if l.trimmingCharacters(in: .whitespaces) == line { lines[i] = line; found = true }
        }
        if !found { lines.append(line) }
        return lines.joined(separator: "\n") + "\n"
    }
}
