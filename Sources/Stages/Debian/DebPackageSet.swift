/// A closed set of packages to install, with name and `Provides` lookups.
package struct DebPackageSet: Sendable {
    package let packages: [DebPackage]
    private let byName: [String: DebPackage]
    private let providers: [String: [String]]

    /// Rejects duplicates and packages of another architecture than `architecture` (or `all`).
    package init(_ packages: [DebPackage], architecture: String) throws(DebianInstallError) {
        var byName: [String: DebPackage] = [:]
        var providers: [String: [String]] = [:]
        for p in packages {
            if let other = byName[p.name] {
                throw .duplicatePackage(name: p.name, first: "\(other.version) in \(other.path)", second: "\(p.version) in \(p.path)")
            }
            guard p.architecture == architecture || p.architecture == "all" else {
                throw .wrongArchitecture(package: "\(p.name) \(p.version)", architecture: p.architecture, expected: architecture)
            }
            byName[p.name] = p
            for v in p.provides { providers[v, default: []].append(p.name) }
        }
        self.packages = packages.sorted { $0.name < $1.name }
        self.byName = byName
        self.providers = providers
    }

    package subscript(name: String) -> DebPackage? { byName[name] }

    /// The package of the set that satisfies a dependency group (first alternative present, real before virtual).
    package func resolve(_ alternatives: [String]) -> String? {
        for a in alternatives where byName[a] != nil { return a }
        for a in alternatives { if let p = providers[a]?.sorted().first { return p } }
        return nil
    }

    /// `roots` plus everything they (pre-)depend on, transitively.
    package func closure(of roots: some Sequence<String>) -> Set<String> {
        var seen: Set<String> = []
        var stack = Array(roots)
        while let name = stack.popLast() {
            guard seen.insert(name).inserted, let p = byName[name] else { continue }
            for group in p.preDepends + p.depends {
                if let dep = resolve(group), !seen.contains(dep) { stack.append(dep) }
            }
        }
        return seen.filter { byName[$0] != nil }
    }

    /// The Essential set with its dependencies: what a chroot needs before dpkg can run in it.
    package var essentialClosure: Set<String> {
        closure(of: packages.filter(\.essential).map(\.name))
    }

    /// The base system every maintainer script may take for granted: the Essential set plus
    /// the `Priority: required` packages, with their dependencies (what debootstrap and
    /// mmdebstrap set up before anything else). Scripts use `awk` (mawk, required but not
    /// Essential) without depending on it, e.g. trixie's `locales`.
    package var requiredClosure: Set<String> {
        closure(of: packages.filter { $0.essential || $0.priority == "required" }.map(\.name))
    }

    /// Names of the packages a package's preinst may rely on: its Pre-Depends and their dependencies.
    package func preDependsClosure(of name: String) -> Set<String> {
        guard let p = byName[name] else { return [] }
        return closure(of: p.preDepends.compactMap(resolve))
    }
}
