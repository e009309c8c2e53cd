import Manifest

/// What one image's depsolve starts from, in three kinds, and the rule
/// between them: what the blueprint asks for beats what the image type adds
/// on its own (an extra that cannot be installed beside the blueprint's
/// packages is dropped, and a note says why), and a blueprint package that
/// cannot be installed beside what the image must have, or beside another
/// of the blueprint's packages, is the blueprint's error: it names both
/// packages, the release and a way out, never apt's "held broken packages".
package struct PackageSelection: Sendable {
    /// A package the blueprint asks for, with where it asks.
    package struct Requested: Sendable, Hashable {
        /// What apt is asked for: `name` or `name=VERSION-GLOB`.
        package var request: String
        /// The blueprint key, e.g. `packages[2]`, `groups[0].name`.
        package var field: String
        package var name: String { String(request.split(separator: "=", maxSplits: 1).first ?? "") }
    }

    /// An extra that was left out, and why.
    package struct Dropped: Sendable, Hashable {
        package var extra: ImageExtra
        /// The blueprint's packages it cannot be installed beside (empty when apt names none of them).
        package var conflictsWith: [String]
        /// apt's own words, one line per broken package.
        package var apt: [String]
    }

    package struct Result: Sendable {
        package var packages: [ResolvedPackage]
        package var dropped: [Dropped]
    }

    /// What the image must have (base set, disk and customization packages).
    package var required: [String]
    /// Why a required package is there, for those a customization adds (`"[customizations.firewall]"`).
    package var requiredBecause: [String: String]
    package var extras: [ImageExtra]
    package var requested: [Requested]

    package init(required: [String], requiredBecause: [String: String] = [:], extras: [ImageExtra], requested: [Requested]) {
        self.required = required
        self.requiredBecause = requiredBecause
        self.extras = extras
        self.requested = requested
    }

    /// Every name, in depsolve order, without repeats.
    package var allNames: [String] { names(extras: extras) }

    func names(extras: [ImageExtra], requested: [Requested]? = nil) -> [String] {
        var seen = Set<String>()
        let all = required + extras.flatMap(\.packages) + (requested ?? self.requested).map(\.request)
        return all.filter { seen.insert($0).inserted }
    }

    /// Resolves everything in one apt call when it fits together (the
    /// common case); otherwise finds what does not fit, at about half a
    /// second per apt call.
    package func resolve(with resolver: any PackageResolver, distro: Distro, architecture: Architecture,
                         blueprint: Blueprint) async throws -> Result {
        func attempt(_ names: [String]) async throws -> [ResolvedPackage]? {
            do {
                return try await resolver.resolve(names, distro: distro, architecture: architecture)
            } catch DepsolveError.unsatisfiable {
                return nil
            } catch DepsolveError.unknownPackage(let name, let d) {
                // Name the blueprint's key when the unknown package is one of its own.
                if let r = requested.first(where: { $0.name == name }) {
                    throw blueprint.origin.error(r.field, .invalid(reason: DepsolveError.unknownPackage(name: name, distro: d).description))
                }
                throw DepsolveError.unknownPackage(name: name, distro: d)
            }
        }
        func aptLines(_ names: [String]) async -> [String] {
            do {
                _ = try await resolver.resolve(names, distro: distro, architecture: architecture)
                return []
            } catch DepsolveError.unsatisfiable(_, _, let reason) {
                return Self.brokenLines(reason)
            } catch {
                return []
            }
        }

        if let all = try await attempt(allNames) { return Result(packages: all, dropped: []) }
        // Without the extras: does the blueprint fit what the image must have?
        guard var kept = try await attempt(names(extras: [])) else {
            throw try await conflict(attempt: attempt, aptLines: aptLines, distro: distro, blueprint: blueprint)
        }
        var keptExtras: [ImageExtra] = []
        var dropped: [Dropped] = []
        for extra in extras {
            let names = self.names(extras: keptExtras + [extra])
            if let r = try await attempt(names) {
                kept = r
                keptExtras.append(extra)
                continue
            }
            let lines = await aptLines(names)
            let mentioned = Set(lines.flatMap(Self.packageNames))
            dropped.append(Dropped(extra: extra, conflictsWith: requested.map(\.name).filter(mentioned.contains), apt: lines))
        }
        return Result(packages: kept, dropped: dropped)
    }

    /// The blueprint's packages do not fit together or beside the image's
    /// own: finds a pair and says which, at the blueprint key of the later one.
    func conflict(attempt: ([String]) async throws -> [ResolvedPackage]?, aptLines: ([String]) async -> [String],
                  distro: Distro, blueprint: Blueprint) async throws -> BlueprintError {
        let release = "\(distro.name) (\(distro.codename))"
        func quoted(_ r: Requested) -> String { "\"\(r.name)\" (\(r.field))" }
        // Add the blueprint's packages one at a time; the first that breaks the set is one of the pair.
        var accepted: [Requested] = []
        for r in requested {
            if try await attempt(names(extras: [], requested: accepted + [r])) != nil {
                accepted.append(r)
                continue
            }
            let alone = names(extras: [], requested: [r])
            if try await attempt(alone) == nil {
                let lines = await aptLines(alone)
                let mentioned = Set(lines.flatMap(Self.packageNames))
                let own = required.filter { mentioned.contains($0) }
                let what = own.isEmpty ? "what every \(distro.name) image has" : own.map { name in
                    requiredBecause[name].map { "\(name) (needed by \($0))" } ?? name
                }.joined(separator: ", ")
                let fix = own.contains(where: { requiredBecause[$0] != nil })
                    ? "remove \"\(r.name)\" or the customization that needs the other package"
                    : "remove \"\(r.name)\" from the blueprint"
                return blueprint.origin.error(r.field, .invalid(reason: "package \"\(r.name)\" cannot be installed in \(release) beside \(what)\(Self.says(lines)); \(fix)"))
            }
            for q in accepted {
                let pair = names(extras: [], requested: [q, r])
                if try await attempt(pair) == nil {
                    let lines = await aptLines(pair)
                    return blueprint.origin.error(r.field, .invalid(reason: "packages \(quoted(q)) and \(quoted(r)) cannot be installed together in \(release)\(Self.says(lines)); keep one of them"))
                }
            }
            let lines = await aptLines(names(extras: [], requested: accepted + [r]))
            return blueprint.origin.error(r.field, .invalid(reason: "package \(quoted(r)) cannot be installed in \(release) beside the blueprint's other packages (\(accepted.map(\.name).joined(separator: ", ")))\(Self.says(lines)); remove one of them"))
        }
        let lines = await aptLines(names(extras: []))
        return blueprint.origin.error("packages", .invalid(reason: "the packages cannot be installed together in \(release)\(Self.says(lines)); remove the packages apt names"))
    }

    static func says(_ lines: [String]) -> String {
        lines.isEmpty ? "" : " (apt: \(lines.joined(separator: "; ")))"
    }

    /// apt's "unmet dependencies" lines, one per relation, as
    /// `cloud-init : Conflicts: firewalld but 2.3.1-1+deb13u1 is to be installed`.
    static func brokenLines(_ reason: String) -> [String] {
        var out: [String] = []
        var current = ""
        var inList = false
        for raw in reason.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.hasPrefix("The following packages have unmet dependencies") { inList = true; continue }
            guard inList, line.hasPrefix(" ") else {
                inList = false
                continue
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let colon = trimmed.range(of: " : ") {
                current = String(trimmed[..<colon.lowerBound])
                out.append(trimmed)
            } else if !current.isEmpty, !trimmed.isEmpty {
                out.append("\(current) : \(trimmed)")
            }
        }
        return out
    }

    /// Package names an apt line mentions (its subject and the relation's targets).
    static func packageNames(_ line: String) -> [String] {
        var names: [String] = []
        let parts = line.components(separatedBy: " : ")
        if let subject = parts.first { names.append(subject) }
        if parts.count > 1 {
            let rest = parts[1].split(separator: ":", maxSplits: 1).last.map(String.init) ?? ""
            for token in rest.split(whereSeparator: { " |,()".contains($0) }) where BlueprintRules.isPackageName(String(token)) {
                names.append(String(token))
            }
        }
        return names
    }
}
