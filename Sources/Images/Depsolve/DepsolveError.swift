/// Why package names could not be turned into a pinned package set.
package enum DepsolveError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No package of that name exists in the distro's archive.
    case unknownPackage(name: String, distro: String)
    /// A name that is not a Debian package name (apt would read it as a pattern or a version request).
    case invalidPackageName(name: String)
    /// No version of the package matches the blueprint's version glob.
    case noMatchingVersion(name: String, glob: String, available: [String], distro: String)
    /// The packages exist but cannot be installed together; `reason` is apt's explanation.
    case unsatisfiable(names: [String], distro: String, reason: String)
    /// Downloading the repository index failed.
    case metadataRefreshFailed(distro: String, architecture: String, reason: String)
    /// apt could not be started or ended in an unexpected way.
    case aptFailed(command: String, status: String, output: String)
    /// apt printed a line Kiln cannot read.
    case unexpectedOutput(line: String)
    /// The repository cache directory could not be prepared.
    case cacheDirectory(path: String, reason: String)

    package var description: String {
        switch self {
        case .unknownPackage(let name, let distro):
            "package \"\(name)\" does not exist in \(distro) (main); check the spelling, e.g. with `apt-cache search`, or remove it"
        case .invalidPackageName(let name):
            "\"\(name)\" is not a Debian package name (lower-case letters, digits, '+', '-', '.'); give plain package names, or name=VERSION-GLOB such as \"less=590*\""
        case .noMatchingVersion(let name, let glob, let available, let distro):
            "no version of \"\(name)\" in \(distro) matches \"\(glob)\"; available: \(available.isEmpty ? "none" : available.joined(separator: ", ")); change the version glob (\"*\" takes the newest)"
        case .unsatisfiable(let names, let distro, let reason):
            "the packages cannot be installed together in \(distro) (\(names.joined(separator: " "))):\n"
                + Self.relations(reason) + "\nremove one of the packages apt names"
        case .metadataRefreshFailed(let distro, let arch, let reason):
            "could not download the \(distro) \(arch) repository index; check the network and the mirror URL:\n\(reason)"
        case .aptFailed(let command, let status, let output):
            "`\(command)` \(status)\n\(output)"
        case .unexpectedOutput(let line):
            "cannot read apt's output line \"\(line)\"; is the host's apt 2.x?"
        case .cacheDirectory(let path, let reason):
            "cannot prepare the repository cache \(path): \(reason); check that it is writable (run as root or pass another cache directory)"
        }
    }

    /// apt's relation lines, without its advice about held packages (there are none here); all of it when it gave none.
    static func relations(_ reason: String) -> String {
        let broken = PackageSelection.brokenLines(reason)
        return broken.isEmpty ? reason : broken.joined(separator: "\n")
    }
}
