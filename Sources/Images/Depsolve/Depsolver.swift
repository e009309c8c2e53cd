import Foundation
import Logging
import Manifest
import Subprocess
import SystemPackage

/// Resolves package names against Debian's signed repository index with the
/// host's apt, in a private apt root (`AptConfiguration`) so the host's apt
/// state is never touched. The index is downloaded again only when older
/// than `ttl` (or when `refresh` is set), so a warm depsolve is one apt call.
///
/// Resolution is `apt-get install --print-uris` on an empty dpkg status: the
/// same solver as `apt-get install -s`, and it prints each chosen file's URL,
/// size and SHA256 (with `Acquire::ForceHash "sha256"`) in one pass.
package struct Depsolver: PackageResolver {
    package var cacheRoot: String
    package var ttl: Duration
    package var refresh: Bool
    package var logger: Logger

    package init(cacheRoot: String = "/var/cache/kiln/repos", ttl: Duration = .seconds(3600), refresh: Bool = false,
                 logger: Logger = Logger(label: "kiln.depsolve")) {
        self.cacheRoot = cacheRoot
        self.ttl = ttl
        self.refresh = refresh
        self.logger = logger
    }

    /// Always part of the closed set: dpkg's required and essential packages and apt.
    static let baseSelectors = ["?priority(required)", "?essential", "apt"]

    package func resolve(_ names: [String], distro: Distro, architecture: Architecture) async throws -> [ResolvedPackage] {
        for request in names {
            let parts = request.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if !BlueprintRules.isPackageName(parts[0]) || parts[0].hasSuffix("-") { throw DepsolveError.invalidPackageName(name: request) }
            if parts.count == 2, !Self.isVersionGlob(parts[1]) { throw DepsolveError.invalidPackageName(name: request) }
        }
        let apt = AptConfiguration(distro: distro, architecture: architecture, cacheRoot: cacheRoot)
        try await updateIfNeeded(apt)
        var seen = Set<String>()
        let requested = try await pinVersions(names.filter { seen.insert($0).inserted }, apt)
        let argv = ["flock", "--shared", apt.lockFile, "apt-get", "-q", "install", "--print-uris"]
            + requested + Self.baseSelectors
        let result = try await run(argv, apt)
        guard result.status == .exited(0) else {
            throw Self.failure(result, names: requested, distro: distro.name, argv: argv)
        }
        let packages = try Self.parsePrintURIs(result.stdout)
        logger.debug("resolved packages", metadata: ["depsolve.count": "\(packages.count)", "depsolve.distro": "\(distro.name)",
                                                    "depsolve.arch": "\(architecture.rawValue)"])
        return packages
    }

    /// Debian version characters (Policy §5.6.12) plus the glob characters `* ? [ ] !`.
    static func isVersionGlob(_ v: String) -> Bool {
        !v.isEmpty && v.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".+~:-*?[]!".contains($0)) }
    }

    /// Turns `name=GLOB` requests into `name=VERSION`, the newest version in
    /// the index the glob matches (fnmatch: `*`, `?`, `[…]`).
    func pinVersions(_ requests: [String], _ apt: AptConfiguration) async throws -> [String] {
        var out: [String] = []
        for request in requests {
            let parts = request.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { out.append(request); continue }
            let (name, glob) = (parts[0], parts[1])
            let argv = ["flock", "--shared", apt.lockFile, "apt-cache", "madison", name]
            let result = try await run(argv, apt)
            // ` name | version | url suite/component arch Packages`, newest first.
            var versions: [String] = []
            for line in result.stdout.split(separator: "\n") {
                let fields = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                if fields.count >= 3, fields[0] == name, !versions.contains(fields[1]) { versions.append(fields[1]) }
            }
            guard !versions.isEmpty else { throw DepsolveError.unknownPackage(name: name, distro: apt.distro.name) }
            guard let match = versions.first(where: { fnmatch(glob, $0, 0) == 0 }) else {
                throw DepsolveError.noMatchingVersion(name: name, glob: glob, available: versions, distro: apt.distro.name)
            }
            out.append("\(name)=\(match)")
        }
        return out
    }

    /// Downloads the index when it is missing, older than `ttl`, for other mirrors, or `refresh` is set.
    package func updateIfNeeded(distro: Distro, architecture: Architecture) async throws {
        try await updateIfNeeded(AptConfiguration(distro: distro, architecture: architecture, cacheRoot: cacheRoot))
    }

    func updateIfNeeded(_ apt: AptConfiguration) async throws {
        let sourcesChanged = try apt.prepare()
        if sourcesChanged { apt.markStale() }
        let age = apt.indexAge()
        let ttlSeconds = Double(ttl.components.seconds) + Double(ttl.components.attoseconds) / 1e18
        if !refresh, let age, age >= 0, age < ttlSeconds { return }
        logger.info("downloading repository index", metadata: ["depsolve.distro": "\(apt.distro.name)",
                                                              "depsolve.arch": "\(apt.architecture.rawValue)"])
        let argv = ["flock", apt.lockFile, "apt-get", "-q", "--error-on=any", "update"]
        let result = try await run(argv, apt)
        guard result.status == .exited(0) else {
            let reason = Self.messages(result).joined(separator: "\n")
            // A stale index is still a signed index: keep working offline unless a refresh was asked for.
            if !refresh, age != nil, !sourcesChanged {
                logger.warning("could not refresh the repository index; using the old one", metadata: ["depsolve.reason": "\(reason)"])
                return
            }
            throw DepsolveError.metadataRefreshFailed(distro: apt.distro.name, architecture: apt.architecture.rawValue, reason: reason)
        }
        apt.markUpdated()
    }

    // MARK: running apt

    struct AptResult: Sendable {
        var status: TerminationStatus
        var stdout: String
        var stderr: String
    }

    func run(_ argv: [String], _ apt: AptConfiguration) async throws -> AptResult {
        var updates: [Environment.Key: String?] = [:]
        for (k, v) in apt.environment { updates[Environment.Key(stringLiteral: k)] = v }
        var platform = PlatformOptions()
        platform.createSession = true
        platform.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .seconds(3))]
        let config = Configuration(executable: .name(argv[0]), arguments: Arguments(Array(argv.dropFirst())),
                                   environment: .inherit.updating(updates), platformOptions: platform)
        logger.debug("running apt", metadata: ["command": "\(argv.joined(separator: " "))"])
        do {
            let r = try await Subprocess.run(config, input: .none, output: .string(limit: 32 << 20), error: .string(limit: 4 << 20))
            try Task.checkCancellation()
            return AptResult(status: r.terminationStatus, stdout: r.standardOutput, stderr: r.standardError)
        } catch let error as CancellationError {
            throw error
        } catch {
            throw DepsolveError.aptFailed(command: argv.joined(separator: " "), status: "could not be run", output: "\(error)")
        }
    }

    // MARK: reading apt's output

    /// Lines of apt's output worth showing a person: errors, warnings and explanations, not progress.
    static func messages(_ r: AptResult) -> [String] {
        let progress = ["Reading package lists", "Building dependency tree", "Reading state information",
                        "Hit:", "Get:", "Ign:", "Fetched "]
        return (r.stdout + "\n" + r.stderr).split(separator: "\n").map(String.init)
            .filter { line in !line.isEmpty && !line.hasPrefix("'") && !progress.contains { line.hasPrefix($0) } }
    }

    static func failure(_ r: AptResult, names: [String], distro: String, argv: [String]) -> DepsolveError {
        for line in r.stderr.split(separator: "\n") {
            if line.hasPrefix("E: Unable to locate package ") {
                return .unknownPackage(name: String(line.dropFirst("E: Unable to locate package ".count)), distro: distro)
            }
        }
        let lines = messages(r)
        if lines.isEmpty {
            return .aptFailed(command: argv.joined(separator: " "), status: "ended with \(r.status)", output: r.stderr)
        }
        return .unsatisfiable(names: names, distro: distro, reason: lines.joined(separator: "\n"))
    }

    /// Reads `'URL' name_version_arch.deb SIZE SHA256:hex` lines.
    static func parsePrintURIs(_ output: String) throws(DepsolveError) -> [ResolvedPackage] {
        var byName: [String: ResolvedPackage] = [:]
        for raw in output.split(separator: "\n") where raw.hasPrefix("'") {
            let line = String(raw)
            guard let close = line.dropFirst().firstIndex(of: "'") else { throw .unexpectedOutput(line: line) }
            let url = String(line[line.index(after: line.startIndex)..<close])
            let fields = line[line.index(after: close)...].split(separator: " ")
            guard fields.count == 3, let size = Int64(fields[1]), fields[2].hasPrefix("SHA256:") else {
                throw .unexpectedOutput(line: line)
            }
            let sha = fields[2].dropFirst("SHA256:".count).lowercased()
            let file = (String(fields[0]).removingPercentEncoding ?? String(fields[0]))
            guard file.hasSuffix(".deb") else { throw .unexpectedOutput(line: line) }
            let parts = file.dropLast(4).split(separator: "_", omittingEmptySubsequences: false)
            guard parts.count == 3, sha.count == 64, sha.allSatisfy(\.isHexDigit) else { throw .unexpectedOutput(line: line) }
            let pkg = ResolvedPackage(name: String(parts[0]), version: String(parts[1]), architecture: String(parts[2]),
                                      url: url, size: size, sha256: sha)
            byName[pkg.name] = pkg
        }
        return byName.values.sorted { $0.name < $1.name }
    }
}
