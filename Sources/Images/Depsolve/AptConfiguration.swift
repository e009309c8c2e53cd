import Foundation
import Manifest

/// A private apt root for one distro and architecture under
/// `/var/cache/kiln/repos/<distro>-<arch>/`: its own apt.conf (given to apt
/// through `APT_CONFIG`), sources, lists, caches and an empty dpkg status, so
/// that the host's `/etc/apt` and `/var/lib/apt` are never read or written.
struct AptConfiguration: Sendable {
    let distro: Distro
    let architecture: Architecture
    let root: String

    init(distro: Distro, architecture: Architecture, cacheRoot: String) {
        self.distro = distro
        self.architecture = architecture
        // Each set of extra repositories gets its own root, so that the plain
        // distro's index stays warm next to blueprints that add repositories.
        var name = "\(distro.name)-\(architecture.rawValue)"
        if !distro.extraSources.isEmpty {
            let text = distro.extraSources.map { $0.stanza() + ($0.key ?? "") + ($0.preferences(sharedHosts: distro.mirrorHosts) ?? "") }
                .joined(separator: "\n")
            name += "-" + String(CanonicalJSON.sha256Hex(.string(text)).prefix(12))
        }
        self.root = "\(cacheRoot)/\(name)"
    }

    var configFile: String { "\(root)/apt.conf" }
    var sourcesFile: String { "\(root)/etc/sources.list.d/debian.sources" }
    var listsDirectory: String { "\(root)/state/lists" }
    /// Touched after every successful `apt-get update`; its age is the index's age.
    var stampFile: String { "\(root)/updated" }
    /// `flock` file: update takes it exclusively, resolving shares it.
    var lockFile: String { "\(root)/kiln.lock" }

    var environment: [String: String] {
        ["APT_CONFIG": configFile, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
         "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    }

    var aptConf: String {
        let r = root
        return """
        // Written by Kiln: a private apt root, nothing from the host's /etc/apt.
        Dir "\(r)/";
        Dir::State "\(r)/state/";
        Dir::State::lists "\(r)/state/lists/";
        Dir::State::status "\(r)/state/status";
        Dir::State::extended_states "\(r)/state/extended_states";
        Dir::Cache "\(r)/cache/";
        Dir::Cache::archives "\(r)/cache/archives/";
        Dir::Etc "\(r)/etc/";
        Dir::Etc::main "\(r)/etc/apt.conf";
        Dir::Etc::parts "\(r)/etc/apt.conf.d/";
        Dir::Etc::sourcelist "\(r)/etc/sources.list";
        Dir::Etc::sourceparts "\(r)/etc/sources.list.d/";
        Dir::Etc::preferences "\(r)/etc/preferences";
        Dir::Etc::preferencesparts "\(r)/etc/preferences.d/";
        Dir::Etc::trusted "\(r)/etc/trusted.gpg";
        Dir::Etc::trustedparts "\(r)/etc/trusted.gpg.d/";
        Dir::Etc::netrc "\(r)/etc/auth.conf";
        Dir::Etc::netrcparts "\(r)/etc/auth.conf.d/";
        Dir::Log "\(r)/log/";
        APT::Architecture "\(architecture.debian)";
        APT::Architectures { "\(architecture.debian)"; };
        APT::Install-Recommends "false";
        APT::Install-Suggests "false";
        Acquire::Check-Valid-Until "false";
        Acquire::Languages "none";
        Acquire::Retries "3";
        Acquire::ForceHash "sha256";

        """
    }

    var sources: String {
        let extra = distro.extraSources.map { "\n" + $0.stanza(keyDirectory: "\(root)/etc/keyrings") }.joined()
        return distro.repositories.map { repo in
            """
            Types: deb
            URIs: \(repo.uri)
            Suites: \(repo.suites.joined(separator: " "))
            Components: \(repo.components.joined(separator: " "))
            Signed-By: \(repo.signedBy)

            """
        }.joined(separator: "\n") + extra
    }

    /// Creates the directory tree and files. Returns true when the sources
    /// changed (a new mirror), which makes the existing index stale.
    func prepare() throws(DepsolveError) -> Bool {
        let fm = FileManager.default
        do {
            for dir in ["etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d", "etc/sources.list.d",
                        "etc/auth.conf.d", "state/lists/partial", "cache/archives/partial", "log"] {
                try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
            }
            try writeIfChanged(configFile, aptConf)
            for empty in ["state/status", "etc/sources.list"] where !fm.fileExists(atPath: "\(root)/\(empty)") {
                try writeIfChanged("\(root)/\(empty)", "")
            }
            var changed = false
            for source in distro.extraSources {
                if let key = source.key {
                    try fm.createDirectory(atPath: "\(root)/etc/keyrings", withIntermediateDirectories: true)
                    changed = try writeIfChanged("\(root)/etc/keyrings/\(source.id).asc", key) || changed
                }
                if let pin = source.preferences(sharedHosts: distro.mirrorHosts) {
                    try writeIfChanged("\(root)/etc/preferences.d/\(source.id).pref", pin)
                }
            }
            return try writeIfChanged(sourcesFile, sources) || changed
        } catch let e as DepsolveError {
            throw e
        } catch {
            throw .cacheDirectory(path: root, reason: "\(error.localizedDescription)")
        }
    }

    /// Age of the index, nil when it was never downloaded.
    func indexAge(now: Date = Date()) -> TimeInterval? {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: stampFile),
              let modified = attrs[.modificationDate] as? Date else { return nil }
        return now.timeIntervalSince(modified)
    }

    func markUpdated() {
        _ = FileManager.default.createFile(atPath: stampFile, contents: Data())
    }

    func markStale() {
        try? FileManager.default.removeItem(atPath: stampFile)
    }

    @discardableResult
    private func writeIfChanged(_ path: String, _ content: String) throws -> Bool {
        let data = Data(content.utf8)
        if FileManager.default.contents(atPath: path) == data { return false }
        let tmp = "\(path).tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw DepsolveError.cacheDirectory(path: path, reason: "cannot write the file")
        }
        guard rename(tmp, path) == 0 else {
            throw DepsolveError.cacheDirectory(path: path, reason: String(cString: strerror(errno)))
        }
        return true
    }
}
