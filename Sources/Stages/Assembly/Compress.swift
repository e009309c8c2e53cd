import Manifest
import StageOptions

extension StageContext {
    /// Runs `tool` over the single file of input `file` into `options.filename`.
    /// (`org.osbuild.xz` and `org.osbuild.zstd` take the same options, `CompressOptions`.)
    func compress<C>(
        _ options: CompressOptions<C>, tool: String, levels: ClosedRange<Int>, defaultLevel: Int,
        extra: [String] = []
    ) async throws {
        let files = try inputFiles("file")
        guard files.count == 1, let source = files.values.first else {
            throw StageError.invalidOptions(reason: "\(stageType): input \"file\" must name exactly one file, it has \(files.count)")
        }
        let level = options.level ?? defaultLevel
        guard levels.contains(level) else {
            throw StageError.invalidOptions(reason: "\(stageType): options.level: \(level) is not in \(levels.lowerBound)…\(levels.upperBound)")
        }
        let target = try outputFile(options.filename)
        try await run(["sh", "-c", "exec \"$@\" > \"$0\"", target, tool, "-T0", "-\(level)", "--stdout"] + extra + ["--", source])
    }
}

package struct XZ: Stage {
    package typealias Options = XZOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["file": .pipelineFiles]
    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        // osbuild's stage runs `xz -0` on every core: on a 3 GiB disk 4× faster than -6 for 15 % more bytes.
        try await context.compress(options, tool: "xz", levels: 0...9, defaultLevel: 0)
    }
}

package struct Zstd: Stage {
    package typealias Options = ZstdOptions
    package static let type = Options.stageType
    package static let sourceFile = StageSource.path()
    package static let placement = Placement.assembly
    package static let inputs: [String: InputKind] = ["file": .pipelineFiles]
    package init() {}

    package func run(_ options: Options, in context: StageContext) async throws {
        try await context.compress(options, tool: "zstd", levels: 1...19, defaultLevel: 3, extra: ["-q"])
    }
}
