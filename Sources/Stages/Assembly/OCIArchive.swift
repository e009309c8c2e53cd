import Foundation
import Manifest
import StageOptions

/// `org.osbuild.oci-archive`: an OCI image archive (a tar of an OCI image
/// layout: `oci-layout`, `index.json`, `blobs/sha256/…`) with the input tree
/// `base` as its one gzip'd layer, for `podman load`, `skopeo copy
/// oci-archive:…` and registries. Nothing in it depends on the clock.
package struct OCIArchive: Stage {
    package typealias Options = OCIArchiveOptions
    package typealias Config = OCIArchiveOptions.Config
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["base": .pipelineTree]

    package init() {}

    static let architectures: Set<String> = ["amd64", "arm64", "386", "arm", "ppc64le", "s390x", "riscv64"]

    package func run(_ options: Options, in context: StageContext) async throws {
        guard Self.architectures.contains(options.architecture) else {
            throw StageError.invalidOptions(
                reason: "\(Self.type): options.architecture: \"\(options.architecture)\" is not an OCI architecture; use amd64 or arm64")
        }
        let tree = try context.inputTree("base")
        let layout = context.scratch + "/oci-layout"
        let blobs = layout + "/blobs/sha256"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)

        // The layer: the tree's top-level entries without a "./" prefix, then gzip'd.
        let layerTar = context.scratch + "/layer.tar"
        let entries = try FileManager.default.contentsOfDirectory(atPath: tree).sorted()
        try await context.run(
            [
                "tar", "--create", "--file", layerTar, "--format=posix", "--numeric-owner", "--sort=name",
                "--xattrs", "--xattrs-include=*", "--acls", "--directory", tree, "--",
            ] + entries)
        let diffID = try await context.sha256(file: layerTar)
        let layerGz = context.scratch + "/layer.tar.gz"
        try await context.run(["sh", "-c", "exec gzip -n -6 --stdout -- \"$1\" > \"$0\"", layerGz, layerTar])
        try FileManager.default.removeItem(atPath: layerTar)
        let layer = try await Self.store(file: layerGz, in: blobs, context)

        var exec: [String: JSONValue] = [:]
        if let c = options.config {
            func list(_ a: [String]?) -> JSONValue? { a.map { .array($0.map { .string($0) }) } }
            func set(_ a: [String]?) -> JSONValue? { a.map { .object(Dictionary($0.map { ($0, JSONValue.object([:])) }) { a, _ in a }) } }
            exec["Cmd"] = list(c.Cmd)
            exec["Entrypoint"] = list(c.Entrypoint)
            exec["Env"] = list(c.Env)
            exec["ExposedPorts"] = set(c.ExposedPorts)
            exec["Volumes"] = set(c.Volumes)
            exec["User"] = c.User.map { .string($0) }
            exec["StopSignal"] = c.StopSignal.map { .string($0) }
            exec["WorkingDir"] = c.WorkingDir.map { .string($0) }
            exec["Labels"] = c.Labels.map { .object($0.mapValues { .string($0) }) }
        }
        let config = try Self.store(
            json: .object([
                "architecture": .string(options.architecture), "os": "linux", "config": .object(exec),
                "rootfs": ["type": "layers", "diff_ids": .array([.string("sha256:" + diffID)])],
                "history": [["created_by": "kiln (org.osbuild.oci-archive)"]],
            ]), in: blobs)
        let manifest = try Self.store(
            json: [
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": .string(config.digest), "size": .int(config.size)],
                "layers": [["mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": .string(layer.digest), "size": .int(layer.size)]],
            ], in: blobs)
        try Self.write(
            json: [
                "schemaVersion": 2,
                "manifests": [
                    [
                        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": .string(manifest.digest),
                        "size": .int(manifest.size), "platform": ["architecture": .string(options.architecture), "os": "linux"],
                        "annotations": ["org.opencontainers.image.ref.name": "latest"],
                    ]
                ],
            ], to: layout + "/index.json")
        try Self.write(json: ["imageLayoutVersion": "1.0.0"], to: layout + "/oci-layout")

        let target = try context.outputFile(options.filename)
        try await context.run([
            "tar", "--create", "--file", target, "--format=posix", "--numeric-owner", "--owner=0", "--group=0",
            "--sort=name", "--mtime=@0", "--directory", layout, "--", "oci-layout", "index.json", "blobs",
        ])
        try? FileManager.default.removeItem(atPath: layout)
    }

    struct Blob {
        let digest: String
        let size: Int64
    }

    /// Moves `file` into the blob directory under its digest.
    static func store(file: String, in blobs: String, _ context: StageContext) async throws -> Blob {
        let hex = try await context.sha256(file: file)
        let size = ((try FileManager.default.attributesOfItem(atPath: file)[.size]) as? NSNumber)?.int64Value ?? 0
        try FileManager.default.moveItem(atPath: file, toPath: blobs + "/" + hex)
        return Blob(digest: "sha256:" + hex, size: size)
    }

    static func store(json: JSONValue, in blobs: String) throws -> Blob {
        let bytes = Data(CanonicalJSON.encode(json).utf8)
        let hex = CanonicalJSON.sha256Hex(json)
        try bytes.write(to: URL(fileURLWithPath: blobs + "/" + hex))
        return Blob(digest: "sha256:" + hex, size: Int64(bytes.count))
    }

    static func write(json: JSONValue, to path: String) throws {
        try Data(CanonicalJSON.encode(json).utf8).write(to: URL(fileURLWithPath: path))
    }
}
