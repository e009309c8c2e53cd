import Foundation
import Manifest
import StageOptions

/// Adds PEM certificates to the system trust store: every certificate, also
/// each one of a bundle, becomes `/usr/local/share/ca-certificates/kiln/kiln-<n>.crt`
/// (numbered across all strings), then the tree's `update-ca-certificates`
/// rebuilds `/etc/ssl/certs`. One certificate per file because its
/// `openssl rehash` makes no hash link for a file holding several.
package struct CACerts: Stage {
    package typealias Options = CACertsOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.tree

    static let directory = "/usr/local/share/ca-certificates/kiln"

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard TreeFiles.exists("/usr/sbin/update-ca-certificates", in: context.tree) else {
            throw StageError.treeInconsistent(reason: "\(Self.type): the tree has no update-ca-certificates; add the ca-certificates package")
        }
        try Self.write(options.certs, in: context.tree)
        try await Sandbox(tree: context.tree, commands: context.commands).run(["update-ca-certificates"])
    }

    /// Writes each CERTIFICATE block of `certs` to a file of its own in `directory`.
    static func write(_ certs: [String], in tree: String) throws {
        var n = 0
        for (i, pem) in certs.enumerated() {
            guard let blocks = PEM.blocks(of: "CERTIFICATE", in: pem) else {
                throw StageError.invalidOptions(reason: "\(type): certs[\(i)] is not a PEM certificate")
            }
            for block in blocks {
                n += 1
                try TreeFiles.write(String(block.text) + "\n", to: "\(directory)/kiln-\(n).crt", in: tree)
            }
        }
    }
}
