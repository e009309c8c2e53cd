import Manifest

/// Where a stage runs (docs/architecture.md §2).
package enum Placement: String, Sendable {
    /// Runs programs from or for the target architecture: on an agent of that architecture.
    case tree
    /// Architecture-neutral byte work on trees and files: on the scheduler.
    case assembly
}

/// One step of a pipeline. Adding a stage is adding one file and one registry line.
package protocol Stage: Sendable {
    /// Options as the manifest carries them; mirrors the stage's JSON schema. Kiln's stages
    /// take a `StageOptionsType` of `Sources/StageOptions`, shared with the manifest generator,
    /// whose `stageType` is the stage's `type`.
    associatedtype Options: Codable & Sendable
    /// The manifest type name (`org.osbuild.hostname`, `org.kiln.debian.install`, …).
    static var type: String { get }
    /// The file that holds the stage, from the repository's root
    /// (`Sources/Stages/Tree/Hostname.swift`); `kiln stages` prints it.
    /// Each stage sets it to `StageSource.path()`.
    static var sourceFile: String { get }
    static var placement: Placement { get }
    /// Whether the executor keeps a checkpoint of the tree after this stage
    /// (for expensive stages, so that a later change restarts from here).
    static var checkpoint: Bool { get }
    /// The inputs the stage takes, by name; validation refuses any other.
    static var inputs: [String: InputKind] { get }
    init()
    func run(_ options: Options, in context: StageContext) async throws
}

extension Stage {
    package static var checkpoint: Bool { false }
    package static var inputs: [String: InputKind] { [:] }
}

/// Where a stage's source is, for `kiln stages`.
package enum StageSource {
    /// The calling file's path from its `Sources/` directory on.
    package static func path(_ file: StaticString = #filePath) -> String {
        let full = "\(file)"
        guard let range = full.range(of: "/Sources/", options: .backwards) else { return full }
        return String(full[full.index(after: range.lowerBound)...])
    }
}
