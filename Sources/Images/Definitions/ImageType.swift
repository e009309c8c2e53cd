/// The kind of image file a build produces.
package enum ImageType: String, Sendable, CaseIterable, Hashable {
    /// A GPT disk image converted to qcow2 (compat 1.1).
    case qcow2
    /// The GPT disk image as a raw file.
    case raw

    /// The image type named `name`.
    package static func named(_ name: String) throws(DefinitionError) -> ImageType {
        guard let t = ImageType(rawValue: name.lowercased()) else {
            throw .unknownImageType(name: name, known: allCases.map(\.rawValue))
        }
        return t
    }

    /// The pipeline whose output is the image (`kiln run --export`).
    package var exportPipeline: String {
        switch self {
        case .qcow2: "qcow2"
        case .raw: "image"
        }
    }

    /// The file the export pipeline writes.
    package var outputFile: String {
        switch self {
        case .qcow2: "disk.qcow2"
        case .raw: "disk.raw"
        }
    }

    /// Size of the disk in bytes (Debian's generic cloud images: 3 GiB).
    package var diskSize: Int64 { 3 << 30 }
}
