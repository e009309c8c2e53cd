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
    /// common case). Otherwise it finds what does not fit by bisection: about
    /// 2·log₂(packages) + 4 more apt calls (half a second each), and never
    /// more than `maxDiagnosisCalls`.
    package func resolve(with resolver: any PackageResolver, distro: Distro, architecture: Architecture,
                         blueprint: Blueprint) async throws -> Result {
        let solver = Attempts(resolver: resolver, distro: distro, architecture: architecture, requested: requested, blueprint: blueprint)
        let first = try await solver.attempt(allNames)
        if case .success(let all) = first { return Result(packages: all, dropped: []) }
        // Without the extras: does the blueprint fit what the image must have?
        let bare = try await solver.attempt(names(extras: []))
        guard case .success(var kept) = bare else {
            throw try await conflict(solver, distro: distro, blueprint: blueprint, failure: bare.failure ?? [])
        }
        var keptExtras: [ImageExtra] = []
        var dropped: [Dropped] = []
        for extra in extras {
            let names = self.names(extras: keptExtras + [extra])
            switch try await solver.attempt(names) {
            case .success(let r):
                kept = r
                keptExtras.append(extra)
            case .failure(let lines):
                // Only the blueprint's packages may push an extra out; anything else is Kiln's own mistake.
                guard case .success = try await solver.attempt(required + (keptExtras + [extra]).flatMap(\.packages)) else {
                    throw DepsolveError.unsatisfiable(names: names, distro: distro.name, reason: lines.joined(separator: "\n"))
                }
                let mentioned = Set(Self.brokenLines(lines.joined(separator: "\n")).flatMap(Self.packageNames))
                dropped.append(Dropped(extra: extra, conflictsWith: requested.map(\.name).filter(mentioned.contains),
                                       apt: Array(Self.brokenLines(lines.joined(separator: "\n")).prefix(6))))
            }
        }
        return Result(packages: kept, dropped: dropped)
    }

    /// An upper bound on the apt calls spent explaining a conflict.
    static let maxDiagnosisCalls = 40

    /// apt calls, each either the package set or apt's reason (its lines), with a count.
    final class Attempts: @unchecked Sendable {
        let resolver: any PackageResolver
        let distro: Distro
        let architecture: Architecture
        let requested: [Requested]
        let blueprint: Blueprint
        var calls = 0

        init(resolver: any PackageResolver, distro: Distro, architecture: Architecture, requested: [Requested], blueprint: Blueprint) {
            self.resolver = resolver
            self.distro = distro
            self.architecture = architecture
            self.requested = requested
            self.blueprint = blueprint
        }

        enum Outcome {
            case success([ResolvedPackage])
            /// apt's explanation, one line per line.
            case failure([String])
            var failure: [String]? { if case .failure(let l) = self { l } else { nil } }
            var failed: Bool { failure != nil }
        }

        func attempt(_ names: [String]) async throws -> Outcome {
            calls += 1
            do {
                return .success(try await resolver.resolve(names, distro: distro, architecture: architecture))
            } catch DepsolveError.unsatisfiable(_, _, let reason) {
                return .failure(reason.split(separator: "\n").map(String.init))
            } catch DepsolveError.unknownPackage(let name, let d) {
                // Name the blueprint's key when the unknown package is one of its own.
                if let r = requested.first(where: { $0.name == name }) {
                    throw blueprint.origin.error(r.field, .invalid(reason: DepsolveError.unknownPackage(name: name, distro: d).description))
                }
                throw DepsolveError.unknownPackage(name: name, distro: d)
            }
        }
    }

    /// The blueprint's packages do not fit together or beside the image's
    /// own: finds a pair by bisection and says which, at the blueprint key of
    /// the later one. `failure` is apt's word on the whole set.
    func conflict(_ solver: Attempts, distro: Distro, blueprint: Blueprint, failure: [String]) async throws -> BlueprintError {
        let release = "\(distro.name) (\(distro.codename))"
        func quoted(_ r: Requested) -> String { "\"\(r.name)\" (\(r.field))" }
        func prefixFails(_ k: Int, plus extra: [Requested] = []) async throws -> [String]? {
            try await solver.attempt(names(extras: [], requested: Array(requested.prefix(k)) + extra)).failure
        }
        func giveUp() -> BlueprintError {
            blueprint.origin.error("packages", .invalid(reason: "the blueprint's packages cannot be installed together in \(release)\(Self.says(failure)); remove one of the packages apt names"))
        }
        // The shortest prefix of the blueprint's packages that fails ends with one of the pair
        // (all of them fail: that is how we got here).
        guard !requested.isEmpty else { return giveUp() }
        var lo = 0, hi = requested.count   // prefix(lo) fits, prefix(hi) fails
        while hi - lo > 1, solver.calls < Self.maxDiagnosisCalls {
            let mid = (lo + hi) / 2
            if try await prefixFails(mid) != nil { hi = mid } else { lo = mid }
        }
        guard hi - lo == 1 else { return giveUp() }
        let r = requested[hi - 1]
        // Alone beside what the image must have?
        if let lines = try await solver.attempt(names(extras: [], requested: [r])).failure {
            let broken = Self.brokenLines(lines.joined(separator: "\n"))
            let mentioned = Set(broken.flatMap(Self.packageNames))
            let own = required.filter { mentioned.contains($0) }
            let what = own.isEmpty ? "what every \(distro.name) image has" : own.map { name in
                requiredBecause[name].map { "\(name) (needed by \($0))" } ?? name
            }.joined(separator: ", ")
            let fix = own.contains(where: { requiredBecause[$0] != nil })
                ? "remove \"\(r.name)\" or the customization that needs the other package"
                : "remove \"\(r.name)\" from the blueprint"
            return blueprint.origin.error(r.field, .invalid(reason: "package \"\(r.name)\" cannot be installed in \(release) beside \(what)\(Self.says(lines)); \(fix)"))
        }
        // The partner: the shortest prefix that fails together with r ends with it.
        var plo = 0, phi = hi - 1           // prefix(plo) + r fits, prefix(phi) + r fails
        while phi - plo > 1, solver.calls < Self.maxDiagnosisCalls {
            let mid = (plo + phi) / 2
            if try await prefixFails(mid, plus: [r]) != nil { phi = mid } else { plo = mid }
        }
        guard phi - plo == 1, phi >= 1 else { return giveUp() }
        let q = requested[phi - 1]
        let pair = try await solver.attempt(names(extras: [], requested: [q, r]))
        if let lines = pair.failure {
            return blueprint.origin.error(r.field, .invalid(reason: "packages \(quoted(q)) and \(quoted(r)) cannot be installed together in \(release)\(Self.says(lines)); keep one of them"))
        }
        // Three or more that only fail together.
        let lines = try await prefixFails(phi, plus: [r]) ?? failure
        return blueprint.origin.error(r.field, .invalid(reason: "package \(quoted(r)) cannot be installed in \(release) beside the blueprint's packages before it (\(requested.prefix(phi).map(\.name).joined(separator: ", ")))\(Self.says(lines)); remove one of the packages apt names"))
    }

    /// apt's reason in parentheses: its relation lines, or, when it gave none
    /// (no installation candidate, say), its error lines without the advice
    /// about held packages; at most six lines.
    static func says(_ lines: [String]) -> String {
        var shown = brokenLines(lines.joined(separator: "\n"))
        if shown.isEmpty {
            shown = lines.filter { $0.hasPrefix("E: ") && !$0.contains("held broken packages") }
                .map { String($0.dropFirst(3)) }
        }
        if shown.isEmpty { shown = lines.filter { !$0.isEmpty && !$0.contains("held broken packages") } }
        return shown.isEmpty ? "" : " (apt: \(shown.prefix(6).joined(separator: "; ")))"
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
