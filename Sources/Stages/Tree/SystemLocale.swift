import Foundation
import StageOptions

/// `/etc/locale.conf` and `/etc/default/locale`; a locale other than C/POSIX is enabled in
/// `/etc/locale.gen` and generated with the tree's `locale-gen`.
package struct SystemLocale: Stage {
    package typealias Options = LocaleOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    package init() {}

    static let builtIn: Set<String> = ["C", "C.UTF-8", "C.utf8", "POSIX"]

    package func run(_ options: Options, in context: StageContext) async throws {
        let (language, lines) = try Self.configure(options, in: context.tree)
        guard !lines.isEmpty else { return }
        // The same choice in debconf, so that reconfiguring or upgrading `locales` keeps it.
        let selections =
            "locales locales/locales_to_be_generated multiselect \(lines.joined(separator: ", "))\n"
            + "locales locales/default_environment_locale select \(language)\n"
        try TreeFiles.write(selections, to: "/var/cache/kiln-locales.debconf", in: context.tree)
        defer { try? FileManager.default.removeItem(atPath: (try? context.path("/var/cache/kiln-locales.debconf")) ?? "/nonexistent") }
        let sandbox = Sandbox(tree: context.tree, commands: context.commands)
        if TreeFiles.exists("/usr/bin/debconf-set-selections", in: context.tree) {
            try await sandbox.run(["debconf-set-selections", "/var/cache/kiln-locales.debconf"])
        }
        try await sandbox.run(["locale-gen"])
    }

    /// Writes `LANG` and enables the locales to generate in `/etc/locale.gen`, every
    /// name normalized; returns `LANG` and the SUPPORTED lines that `locale-gen` must
    /// build (none when every locale is built in).
    static func configure(_ options: Options, in tree: String) throws -> (language: String, lines: [String]) {
        for l in [options.language] + (options.generate ?? []) where l.isEmpty || !l.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) {
            throw StageError.invalidOptions(reason: "\(type): language \"\(l)\" is not a locale name like en_US.UTF-8")
        }
        let language = normalized(options.language)
        // Debian's `locales` keeps the setting in /etc/locale.conf with /etc/default/locale
        // linked to it (and restores the link at boot): write through that layout.
        try TreeFiles.write("LANG=\(language)\n", to: "/etc/locale.conf", in: tree)
        let legacy = try TreePath.resolve("/etc/default/locale", in: tree)
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: legacy)) != "../locale.conf" {
            try TreeFiles.write("LANG=\(language)\n", to: "/etc/default/locale", in: tree)
        }
        let toGenerate = ([language] + (options.generate ?? []).map(normalized)).filter { !builtIn.contains($0) }
        guard !toGenerate.isEmpty else { return (language, []) }

        guard TreeFiles.exists("/usr/sbin/locale-gen", in: tree) else {
            throw StageError.treeInconsistent(
                reason: "\(type): language \(toGenerate[0]) must be generated, but the tree has no locale-gen; add the \"locales\" package")
        }
        var current = try TreeFiles.read("/etc/locale.gen", in: tree) ?? ""
        var lines: [String] = []
        for l in toGenerate {
            let line = try supportedLine(l, in: tree)
            lines.append(line)
            current = enable(line, in: current)
        }
        try TreeFiles.write(current, to: "/etc/locale.gen", in: tree)
        return (language, lines)
    }

    /// `language` with a UTF-8 codeset spelt as SUPPORTED and locale.gen spell it:
    /// `de_DE.utf8` (as `locale -a` lists it) → `de_DE.UTF-8`, modifier kept.
    static func normalized(_ language: String) -> String {
        guard let dot = language.firstIndex(of: ".") else { return language }
        let end = language[dot...].firstIndex(of: "@") ?? language.endIndex
        let codeset = language[language.index(after: dot)..<end]
        guard codeset.lowercased().replacingOccurrences(of: "-", with: "") == "utf8" else { return language }
        return language[...dot] + "UTF-8" + language[end...]
    }

    /// The `/usr/share/i18n/SUPPORTED` line of `language` (e.g. `en_US.UTF-8 UTF-8`).
    static func supportedLine(_ language: String, in tree: String) throws -> String {
        let supported = try TreeFiles.read("/usr/share/i18n/SUPPORTED", in: tree) ?? ""
        for line in supported.split(separator: "\n") where line.split(separator: " ").first.map(String.init) == language {
            return String(line)
        }
        throw StageError.invalidOptions(
            reason: "\(type): language \"\(language)\" is not in the tree's /usr/share/i18n/SUPPORTED (try e.g. en_US.UTF-8)")
    }

    /// `locale.gen` with `line` uncommented, or appended when absent.
    static func enable(_ line: String, in localeGen: String) -> String {
        var lines = localeGen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var found = false
        for i in lines.indices {
            var l = lines[i]
            while l.hasPrefix("#") { l.removeFirst() }
            if l.trimmingCharacters(in: .whitespaces) == line {
                lines[i] = line
                found = true
            }
        }
        if !found { lines.append(line) }
        return lines.joined(separator: "\n") + "\n"
    }
}
