import Manifest

/// The kind of image file a build produces. `docs/images.md` has the table
/// of what each contains.
package enum ImageType: String, Sendable, CaseIterable, Hashable {
    /// Generic VM image like Debian's genericcloud: cloud-init (NoCloud,
    /// ConfigDrive) and the qemu guest agent, converted to compressed qcow2.
    case qcow2
    /// The GPT disk image as a raw file, no cloud-init.
    case raw
    /// The raw disk without cloud-init, xz-compressed (`disk.raw.xz`).
    case minimalRaw = "minimal-raw"
    /// The raw disk without cloud-init, zstd-compressed (`disk.raw.zst`).
    case minimalRawZstd = "minimal-raw-zst"
    /// streamOptimized VMDK (VMware, VirtualBox).
    case vmdk
    /// OVF descriptor, manifest and streamOptimized VMDK in one tar.
    case ova
    /// Azure: fixed VHD, cloud-init with the Azure data source.
    case vhd
    /// Amazon EC2: raw disk, cloud-init with the EC2 data source.
    case ami
    /// Google Compute Engine: `disk.raw` in a gzip'd tar, cloud-init with the GCE data source.
    case gce
    /// The root filesystem as a zstd-compressed tar, no kernel or boot loader.
    case tar
    /// An OCI image archive with one layer, no kernel or boot loader.
    case container

    /// Other names accepted on the command line (osbuild-composer's names).
    package static let aliases: [String: ImageType] = [
        "guest-image": .qcow2, "minimal-raw-xz": .minimalRaw, "ec2": .ami, "oci": .container,
    ]

    /// The image type named `name` or one of its aliases.
    package static func named(_ name: String) throws(DefinitionError) -> ImageType {
        let lower = name.lowercased()
        guard let t = ImageType(rawValue: lower) ?? aliases[lower] else {
            throw .unknownImageType(name: name, known: allCases.map(\.rawValue) + aliases.keys.sorted())
        }
        return t
    }

    /// One line for `kiln image-types`.
    package var summary: String {
        switch self {
        case .qcow2: "VM image (qcow2, compressed), cloud-init NoCloud/ConfigDrive, qemu guest agent"
        case .raw: "raw GPT disk image"
        case .minimalRaw: "raw GPT disk image without cloud-init, xz-compressed"
        case .minimalRawZstd: "raw GPT disk image without cloud-init, zstd-compressed"
        case .vmdk: "VMware disk (streamOptimized VMDK)"
        case .ova: "OVF appliance: descriptor, manifest and streamOptimized VMDK in a tar"
        case .vhd: "Azure: fixed VHD, cloud-init with the Azure data source"
        case .ami: "Amazon EC2: raw disk, cloud-init with the EC2 data source"
        case .gce: "Google Compute Engine: disk.raw in a .tar.gz, cloud-init with the GCE data source"
        case .tar: "root filesystem tarball (zstd), no kernel or boot loader"
        case .container: "OCI image archive, one layer, no kernel or boot loader"
        }
    }

    /// Whether the image is a partitioned disk with a kernel and a boot loader.
    package var isDisk: Bool { self != .tar && self != .container }

    /// Architectures this type is defined for (OVF appliances are x86_64 VMs).
    package var architectures: [Architecture] {
        self == .ova ? [.x86_64] : Architecture.allCases
    }

    /// The pipeline whose output is the image (`kiln run --export`).
    package var exportPipeline: String {
        switch self {
        case .qcow2: "qcow2"
        case .raw, .ami: "image"
        case .minimalRaw: "xz"
        case .minimalRawZstd: "zstd"
        case .vmdk: "vmdk"
        case .vhd: "vpc"
        case .ova, .gce, .tar: "archive"
        case .container: "container"
        }
    }

    /// The file the export pipeline writes.
    package var outputFile: String {
        switch self {
        case .qcow2: "disk.qcow2"
        case .raw, .ami: "disk.raw"
        case .minimalRaw: "disk.raw.xz"
        case .minimalRawZstd: "disk.raw.zst"
        case .vmdk: "disk.vmdk"
        case .vhd: "disk.vhd"
        case .ova: "image.ova"
        case .gce: "image.tar.gz"
        case .tar: "root.tar.zst"
        case .container: "container.tar"
        }
    }

    /// Size of the disk in bytes, as Debian's own cloud images have it
    /// (generic 3 GiB, EC2 8 GiB, GCE 10 GiB); Azure's 30 GiB is left to
    /// `[[customizations.filesystem]]`, a fixed VHD of 4 GiB keeps uploads small.
    package var diskSize: Int64 {
        switch self {
        case .ami: 8 << 30
        case .gce: 10 << 30
        case .vhd: 4 << 30
        default: 3 << 30
        }
    }

    /// cloud-init's data sources for this type; nil: no cloud-init.
    package var cloudInitDataSources: [String]? {
        switch self {
        case .qcow2: ["NoCloud", "ConfigDrive"]
        case .vhd: ["Azure"]
        case .ami: ["Ec2"]
        case .gce: ["GCE"]
        default: nil
        }
    }
}

extension Distro {
    /// VMware's guest OS identifier for OVF descriptors (`debian12_64Guest`).
    package var vmwareGuestOS: String {
        let major = name.split(separator: "-").last.map(String.init) ?? ""
        return "debian\(major)_64Guest"
    }
}
