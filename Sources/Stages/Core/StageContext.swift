import Foundation
import Logging
import Manifest

/// A resolved stage input.
package enum StageInput: Sendable {
    /// Source files by checksum → path in the source cache (read only).
    case files([String: String])
    /// The finished tree of another pipeline (read only).
    case tree(String)
}

/// A region of a file that stands in for a block device (osbuild's
/// `org.osbuild.loopback`). Kiln writes filesystems straight into the disk
/// image at an offset instead of attaching loop devices.
package struct DeviceRegion: Sendable, Hashable {
    package let path: String
    package let offset: UInt64
    /// Bytes; nil means to the end of the file.
    package let size: UInt64?

    package init(path: String, offset: UInt64, size: UInt64?) {
        self.path = path
        self.offset = offset
        self.size = size
    }
}

/// Everything a stage may touch while it runs.
package struct StageContext: Sendable {
    /// Absolute path of the pipeline's tree: the target root filesystem for
    /// tree stages, the output directory for assembly stages.
    package let tree: String
    package let inputs: [String: StageInput]
    package let devices: [String: DeviceRegion]
    /// A private scratch directory, removed after the stage.
    package let scratch: String
    package let logger: Logger
    /// Runs host programs, logging their output to the stage log.
    package let commands: CommandRunner
    /// The stage type, for messages.
    package let stageType: String

    package init(tree: String, inputs: [String: StageInput], devices: [String: DeviceRegion], scratch: String,
                 logger: Logger, commands: CommandRunner, stageType: String) {
        self.tree = tree
        self.inputs = inputs
        self.devices = devices
        self.scratch = scratch
        self.logger = logger
        self.commands = commands
        self.stageType = stageType
    }

    /// The tree of the pipeline input `name`.
    package func inputTree(_ name: String) throws -> String {
        guard case .tree(let path)? = inputs[name] else { throw StageError.missingInput(stage: stageType, name: name) }
        return path
    }

    /// The files of the input `name` (checksum → path).
    package func inputFiles(_ name: String) throws -> [String: String] {
        guard case .files(let files)? = inputs[name] else { throw StageError.missingInput(stage: stageType, name: name) }
        return files
    }

    package func device(_ name: String) throws -> DeviceRegion {
        guard let d = devices[name] else { throw StageError.missingDevice(stage: stageType, name: name) }
        return d
    }

    /// Host path of an absolute path inside the tree.
    package func path(_ inTree: String) throws -> String {
        try TreePath.resolve(inTree, in: tree)
    }

    /// Runs a host program (output to the stage log); throws with the log tail on failure.
    package func run(_ argv: [String], environment: [String: String] = [:], directory: String? = nil) async throws {
        try await commands.run(argv, environment: environment, directory: directory)
    }

    /// Runs a program and returns its standard output.
    package func output(_ argv: [String], environment: [String: String] = [:]) async throws -> String {
        try await commands.output(argv, environment: environment)
    }
}
