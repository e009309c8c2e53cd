/// Why `org.kiln.debian.install` could not build the tree.
package enum DebianInstallError: Error, Sendable, CustomStringConvertible {
    /// A file of the `packages` input is not a readable Debian package.
    case badPackage(path: String, reason: String)
    /// A package is built for another architecture than the tree.
    case wrongArchitecture(package: String, architecture: String, expected: String)
    /// Two files of the input carry the same package.
    case duplicatePackage(name: String, first: String, second: String)
    /// The set lacks what a chroot needs to run dpkg (`dpkg`, a shell, libc).
    case missingEssential(names: [String])
    /// The tree to install into is not empty.
    case treeNotEmpty(path: String)
    /// Target binaries cannot run on this host (no binfmt handler for the architecture).
    case cannotRunTarget(architecture: String)
    /// The finished package database is inconsistent (`dpkg --audit`, a package not `ii`).
    case inconsistentDatabase(report: String)

    package var description: String {
        switch self {
        case .badPackage(let path, let reason):
            "\(path): not a usable Debian package: \(reason); fetch the source again (the cache file may be damaged)"
        case .wrongArchitecture(let package, let architecture, let expected):
            "package \(package) is built for \(architecture), but the tree is \(expected); depsolve again for \(expected)"
        case .duplicatePackage(let name, let first, let second):
            "package \(name) is given twice (\(first) and \(second)); the packages input must hold one version of each package"
        case .missingEssential(let names):
            "the package set lacks \(names.joined(separator: ", ")), without which dpkg cannot run in the tree; depsolve with the Essential set included"
        case .treeNotEmpty(let path):
            "\(path): org.kiln.debian.install needs an empty tree; put it first in the pipeline"
        case .cannotRunTarget(let architecture):
            "this host cannot run \(architecture) programs (maintainer scripts need them); install qemu-user-static and binfmt-support and enable the binfmt handler (ops/install-deps), or build on a \(architecture) agent"
        case .inconsistentDatabase(let report):
            "the installed package database is inconsistent:\n\(report)"
        }
    }
}
