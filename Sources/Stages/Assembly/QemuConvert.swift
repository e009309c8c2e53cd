import Manifest
import StageOptions

/// `org.osbuild.qemu`: converts a raw disk image (input `image`) into
/// another format with qemu-img.
package struct QemuConvert: Stage {
    package typealias Options = QemuOptions
    package typealias Format = QemuOptions.Format
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["image": .pipelineFiles]

    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        let files = try context.inputFiles("image")
        guard files.count == 1, let source = files.values.first else {
            throw StageError.invalidOptions(reason: "\(Self.type): input \"image\" must name exactly one file, it has \(files.count)")
        }
        let target = try context.outputFile(options.filename)
        try await context.run(
            ["qemu-img", "convert", "-f", "raw", "-O", options.format.type]
                + (try Self.arguments(options.format)) + [source, target])
    }

    static func arguments(_ f: Format) throws -> [String] {
        func only(_ allowed: Set<String>) throws {
            let given: [(String, Bool)] = [
                ("compat", f.compat != nil), ("compression", f.compression != nil),
                ("adapter_type", f.adapter_type != nil), ("compat6", f.compat6 != nil),
                ("subformat", f.subformat != nil), ("force_size", f.force_size != nil),
            ]
            for (name, present) in given where present && !allowed.contains(name) {
                throw StageError.invalidOptions(reason: "\(type): options.format.\(name) does not apply to format \"\(f.type)\"")
            }
        }
        switch f.type {
        case "qcow2":
            try only(["compat", "compression"])
            return (f.compression ?? true ? ["-c"] : []) + ["-o", "compat=\(f.compat ?? "1.1")"]
        case "vmdk":
            try only(["compression", "adapter_type", "compat6", "subformat"])
            var o: [String] = []
            if let a = f.adapter_type { o.append("adapter_type=\(a)") }
            if f.compat6 == true { o.append("compat6") }
            if let s = f.subformat { o.append("subformat=\(s)") }
            return (f.compression ?? true ? ["-c"] : []) + (o.isEmpty ? [] : ["-o", o.joined(separator: ",")])
        case "vpc":
            try only(["subformat", "force_size"])
            let sub = f.subformat ?? "fixed"
            guard sub == "fixed" || sub == "dynamic" else {
                throw StageError.invalidOptions(reason: "\(type): options.format.subformat: \"\(sub)\" is not fixed or dynamic")
            }
            return ["-o", "subformat=\(sub)" + (f.force_size ?? true ? ",force_size=on" : "")]
        case "vhdx", "vdi", "raw":
            try only([])
            return []
        default:
            throw StageError.invalidOptions(reason: "\(type): options.format.type: \"\(f.type)\" is not one of qcow2, vmdk, vpc, vhdx, vdi, raw")
        }
    }
}
