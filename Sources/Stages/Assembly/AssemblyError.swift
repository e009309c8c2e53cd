/// An assembly stage cannot lay out the bytes it was asked for.
package enum AssemblyError: Error, Sendable, CustomStringConvertible {
    /// An identifier option (UUID, volume ID, label) is malformed.
    case badIdentifier(field: String, value: String, expected: String)
    /// A device region does not lie inside its file.
    case regionOutsideFile(path: String, offset: UInt64, size: UInt64?, fileSize: UInt64)
    /// A device region is too small for what should go into it.
    case regionTooSmall(path: String, offset: UInt64, size: UInt64, needed: UInt64)
    /// The directory that should fill a filesystem is not in the input tree.
    case missingSource(path: String, tree: String)
    /// The disk image a stage should modify does not exist yet.
    case missingImage(path: String, stage: String)
    /// No GRUB module directory for the platform, neither in the tree nor on the host.
    case missingGrubModules(platform: String, searched: [String])
    /// GRUB's core image does not fit where it should go.
    case coreImageTooLarge(bytes: UInt64, room: UInt64, location: UInt64)

    package var description: String {
        switch self {
        case .badIdentifier(let field, let value, let expected):
            "\(field): \"\(value)\" is not \(expected)"
        case .regionOutsideFile(let path, let offset, let size, let fileSize):
            "\(path): device region at byte \(offset)\(size.map { " of \($0) bytes" } ?? "") lies outside the file (\(fileSize) bytes); "
                + "create the file large enough first (org.osbuild.truncate) or fix the device's start/size"
        case .regionTooSmall(let path, let offset, let size, let needed):
            "\(path): the region at byte \(offset) has \(size) bytes but needs at least \(needed); make the partition larger"
        case .missingSource(let path, let tree):
            "source \(path) is not a directory in the input tree \(tree); fix the stage's source option or the tree pipeline"
        case .missingImage(let path, let stage):
            "\(stage): disk image \(path) does not exist; create it first (org.osbuild.truncate, org.osbuild.sfdisk)"
        case .missingGrubModules(let platform, let searched):
            "no GRUB modules for \(platform) in \(searched.joined(separator: " or ")); install grub-pc-bin in the image tree or on the host"
        case .coreImageTooLarge(let bytes, let room, let location):
            "GRUB's core image (\(bytes) bytes) does not fit in the \(room) bytes at sector \(location); make the BIOS boot partition larger"
        }
    }
}
