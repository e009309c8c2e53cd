import Foundation
import Manifest
import StageOptions

/// `org.osbuild.tar`: archives the input tree with GNU tar, keeping numeric
/// owners, modes, hard links and (in pax format) xattrs, ACLs and SELinux labels.
package struct Tar: Stage {
    package typealias Options = TarOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["tree": .pipelineTree]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let tree = try context.inputTree("tree")
        let target = try context.outputFile(options.filename)
        let format: String =
            switch options.format ?? "pax" {
            case "pax", "posix": "posix"
            case let f where ["gnu", "oldgnu", "ustar", "v7"].contains(f): f
            case let f:
                throw StageError.invalidOptions(reason: "\(Self.type): options.format: \"\(f)\" is not one of pax, posix, gnu, oldgnu, ustar, v7")
            }
        if options.rootNode != nil && options.paths != nil {
            throw StageError.invalidOptions(reason: "\(Self.type): options.root-node and options.paths exclude each other")
        }
        var argv = [
            "tar", "--create", "--file", target, "--auto-compress", "--format=\(format)",
            "--numeric-owner", "--sort=name", "--directory", tree,
        ]
        // Extended attributes, ACLs and SELinux labels need pax headers.
        if format == "posix" {
            argv += options.xattrs ?? true ? ["--xattrs", "--xattrs-include=*"] : ["--no-xattrs"]
            argv += options.acls ?? true ? ["--acls"] : ["--no-acls"]
            argv += options.selinux ?? true ? ["--selinux"] : ["--no-selinux"]
        }
        if options.sparse == true { argv.append("--sparse") }
        argv.append("--")
        if let paths = options.paths {
            // Named as given, relative to the tree (`disk.raw`, not `./disk.raw`: GCE and OVF readers want the bare name).
            // Each looked up in the tree first: a link on the way would make tar archive what is outside it
            // (a link as the last component is archived as the link itself).
            for (i, p) in paths.enumerated() {
                let entry: ConfinedPath
                do {
                    entry = try ConfinedPath(p.hasPrefix("/") ? p : "/" + p, in: tree, kind: .entry)
                } catch {
                    guard case .badPath(let path, let reason) = error else { throw error }
                    throw StageError.badPath(path: path, reason: "\(reason) (\(Self.type): options.paths[\(i)] \"\(p)\")")
                }
                argv.append(String(entry.inTree.dropFirst()))
            }
        } else {
            switch options.rootNode ?? "include" {
            case "include": argv.append(".")
            case "omit": argv += try FileManager.default.contentsOfDirectory(atPath: tree).sorted()
            case let r: throw StageError.invalidOptions(reason: "\(Self.type): options.root-node: \"\(r)\" is not include or omit")
            }
        }
        try await context.run(argv)
    }
}
