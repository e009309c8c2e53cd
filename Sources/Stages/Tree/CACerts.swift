import Foundation

/// Adds PEM certificates to the system trust store: each becomes
/// `/usr/local/share/ca-certificates/kiln/kiln-<n>.crt`, then the tree's
/// `update-ca-certificates` rebuilds `/etc/ssl/certs`.
package struct CACerts: Stage {
    package static let type = "org.kiln.cacerts"
    package static let placement = Placement.tree

    package struct Options: Codable, Sendable {
        package var certs: [String]
    }

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        guard TreeFiles.exists("/usr/sbin/update-ca-certificates", in: context.tree) else {
            throw StageError.treeInconsistent(reason: "\(Self.type): the tree has no update-ca-certificates; add the ca-certificates package")
        }
        for (i, pem) in options.certs.enumerated() {
            guard pem.contains("-----BEGIN CERTIFICATE-----"), pem.contains("-----END CERTIFICATE-----") else {
                throw StageError.invalidOptions(reason: "\(Self.type): certs[\(i)] is not a PEM certificate")
            }
            let text = pem.hasSuffix("\n") ? pem : pem + "\n"
            try TreeFiles.write(text, to: "/usr/local/share/ca-certificates/kiln/kiln-\(i + 1).crt", in: context.tree)
        }
        try await Chroot(tree: context.tree, commands: context.commands).with { try await $0.run(["update-ca-certificates"]) }
    }
}
