// Options of the assembly stages that turn a disk or a tree into the file
// an image type delivers: qemu-img conversion, tar, compression, OVF, OCI.

/// `org.osbuild.qemu`: the raw disk of input `image` converted to another format.
package struct QemuOptions: StageOptionsType {
    package static let stageType = "org.osbuild.qemu"

    /// osbuild's per-format options, flattened; each is checked against `type`.
    package struct Format: Codable, Sendable {
        /// `qcow2`, `vmdk`, `vpc`, `vhdx`, `vdi` or `raw`.
        package let type: String
        /// qcow2: compatibility level (default "1.1").
        package let compat: String?
        /// qcow2, vmdk: compress (default true, as osbuild).
        package let compression: Bool?
        /// vmdk: `ide`, `lsilogic`, `buslogic`, `legacyESX`.
        package let adapter_type: String?
        /// vmdk: version 6.
        package let compat6: Bool?
        /// vmdk: `streamOptimized`, `monolithicSparse`, …; vpc: `fixed` (default) or `dynamic`.
        package let subformat: String?
        /// vpc: use the exact size, not a CHS approximation (default true).
        package let force_size: Bool?

        package init(
            type: String, compat: String? = nil, compression: Bool? = nil, adapter_type: String? = nil,
            compat6: Bool? = nil, subformat: String? = nil, force_size: Bool? = nil
        ) {
            (self.type, self.compat, self.compression, self.adapter_type, self.compat6, self.subformat, self.force_size) = (
                type, compat, compression, adapter_type, compat6, subformat, force_size
            )
        }
    }

    /// Output file in the output tree.
    package let filename: String
    package let format: Format

    package init(filename: String, format: Format) {
        (self.filename, self.format) = (filename, format)
    }
}

/// `org.osbuild.tar`: the input tree archived into a file of the output tree.
package struct TarOptions: StageOptionsType {
    package static let stageType = "org.osbuild.tar"

    /// Archive in the output tree; a compression suffix (`.zst`, `.xz`, `.gz`) compresses it.
    package let filename: String
    /// `pax` (default; GNU tar's `posix`), `gnu`, `oldgnu`, `posix`, `ustar`, `v7`.
    package let format: String?
    package let acls: Bool?
    package let selinux: Bool?
    package let xattrs: Bool?
    /// `include` (entries under `./`, the default) or `omit` (top-level entries only).
    package let rootNode: String?
    /// Only these paths of the tree, in this order, archived under their relative names.
    package let paths: [String]?
    /// Store holes of sparse files.
    package let sparse: Bool?

    enum CodingKeys: String, CodingKey {
        case filename, format, acls, selinux, xattrs, paths, sparse
        case rootNode = "root-node"
    }

    package init(
        filename: String, format: String? = nil, acls: Bool? = nil, selinux: Bool? = nil, xattrs: Bool? = nil,
        rootNode: String? = nil, paths: [String]? = nil, sparse: Bool? = nil
    ) {
        (self.filename, self.format, self.acls, self.selinux, self.xattrs, self.rootNode, self.paths, self.sparse) = (
            filename, format, acls, selinux, xattrs, rootNode, paths, sparse
        )
    }
}

/// The stage type of a compression stage: `XZCompression` or `ZstdCompression`.
package protocol CompressionStageType: Sendable {
    static var stageType: String { get }
}

/// `org.osbuild.xz`.
package enum XZCompression: CompressionStageType {
    package static let stageType = "org.osbuild.xz"
}

/// `org.osbuild.zstd`.
package enum ZstdCompression: CompressionStageType {
    package static let stageType = "org.osbuild.zstd"
}

/// `org.osbuild.xz` and `org.osbuild.zstd`: one input file (input `file`)
/// compressed into the output tree. `level` is Kiln's addition (osbuild's
/// stages take the tool's default). The two stages take the same options.
package struct CompressOptions<Compression: CompressionStageType>: StageOptionsType {
    package static var stageType: String { Compression.stageType }

    /// The compressed file in the output tree.
    package let filename: String
    /// Compression level (xz 0–9, default 0 as osbuild's stage; zstd 1–19, default 3).
    package let level: Int?

    package init(filename: String, level: Int? = nil) {
        (self.filename, self.level) = (filename, level)
    }
}

package typealias XZOptions = CompressOptions<XZCompression>
package typealias ZstdOptions = CompressOptions<ZstdCompression>

/// `org.osbuild.ovf`: the OVF descriptor and manifest of a VMDK.
package struct OVFOptions: StageOptionsType {
    package static let stageType = "org.osbuild.ovf"

    package struct VMware: Codable, Sendable {
        /// VMware's guest OS identifier (default `otherLinux64Guest`).
        package let os_type: String?

        package init(os_type: String? = nil) {
            self.os_type = os_type
        }
    }

    /// The VMDK in the root of the tree.
    package let vmdk: String
    package let vmware: VMware?

    package init(vmdk: String, vmware: VMware? = nil) {
        (self.vmdk, self.vmware) = (vmdk, vmware)
    }
}

/// `org.osbuild.oci-archive`: the input tree as a single-layer OCI image archive.
package struct OCIArchiveOptions: StageOptionsType {
    package static let stageType = "org.osbuild.oci-archive"

    /// The execution parameters of the OCI image configuration; map-valued
    /// fields of the specification (ports, volumes) are lists here, as in osbuild.
    package struct Config: Codable, Sendable {
        package let Cmd: [String]?
        package let Entrypoint: [String]?
        package let Env: [String]?
        package let ExposedPorts: [String]?
        package let User: String?
        package let Labels: [String: String]?
        package let StopSignal: String?
        package let Volumes: [String]?
        package let WorkingDir: String?

        package init(
            Cmd: [String]? = nil, Entrypoint: [String]? = nil, Env: [String]? = nil, ExposedPorts: [String]? = nil,
            User: String? = nil, Labels: [String: String]? = nil, StopSignal: String? = nil, Volumes: [String]? = nil,
            WorkingDir: String? = nil
        ) {
            (self.Cmd, self.Entrypoint, self.Env, self.ExposedPorts, self.User, self.Labels, self.StopSignal, self.Volumes, self.WorkingDir) = (
                Cmd, Entrypoint, Env, ExposedPorts, User, Labels, StopSignal, Volumes, WorkingDir
            )
        }
    }

    /// The archive in the output tree.
    package let filename: String
    /// The image's architecture in OCI (Go) terms: `amd64`, `arm64`.
    package let architecture: String
    package let config: Config?

    package init(filename: String, architecture: String, config: Config? = nil) {
        (self.filename, self.architecture, self.config) = (filename, architecture, config)
    }
}
