/// Why an initramfs could not be built.
package enum InitramfsError: Error, Sendable, CustomStringConvertible {
    /// The tree has kernels but not the initramfs-tools files the image layout comes from.
    case missingInitramfsTools(path: String)
    /// A binary the initramfs needs is not in the tree.
    case missingBinary(path: String, neededBy: String)
    /// A shared library a binary needs is not in any of the tree's library directories.
    case missingLibrary(name: String, neededBy: String, searched: [String])
    /// An ELF file of an architecture other than the tree's.
    case wrongArchitecture(path: String, machine: UInt16, expected: UInt16)
    /// A symlink chain in the tree does not end.
    case symlinkLoop(path: String)
    /// A kernel module named in the configuration or `modules.dep` is not where the tree says it is.
    case missingModule(name: String, path: String)
    /// The tree's kernel configuration lacks support for the chosen compression.
    case compressionUnsupported(compression: String, kernel: String, symbol: String)
    /// A file could not be copied or created in the staging directory.
    case stagingFailed(path: String, reason: String)

    package var description: String {
        switch self {
        case .missingInitramfsTools(let path):
            "\(path) is missing: install initramfs-tools (or initramfs-tools-core) in the tree before org.kiln.initramfs"
        case .missingBinary(let path, let neededBy):
            "\(path) (needed by \(neededBy)) is not in the tree; install the package that ships it"
        case .missingLibrary(let name, let neededBy, let searched):
            "\(neededBy) needs \(name), which is in none of \(searched.joined(separator: ", ")); install the package that ships it"
        case .wrongArchitecture(let path, let machine, let expected):
            "\(path) is for ELF machine \(machine), the tree is for \(expected); the tree mixes architectures"
        case .symlinkLoop(let path):
            "\(path): too many levels of symbolic links in the tree"
        case .missingModule(let name, let path):
            "kernel module \(name) is listed in modules.dep as \(path) but the file is missing; reinstall the kernel package"
        case .compressionUnsupported(let compression, let kernel, let symbol):
            "kernel \(kernel) cannot unpack a \(compression) initramfs (\(symbol) is not set in /boot/config-\(kernel)); set options.compression to \"gzip\""
        case .stagingFailed(let path, let reason):
            "cannot stage \(path): \(reason)"
        }
    }
}
