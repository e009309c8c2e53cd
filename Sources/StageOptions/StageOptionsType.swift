import Manifest

/// A stage's options as the manifest carries them: the one place the
/// option keys of a stage type are spelled (issue 16). The stage decodes
/// them (`Stage.Options`); the manifest generator builds them and encodes
/// them into a `ManifestStage`.
package protocol StageOptionsType: Codable, Sendable {
    /// The manifest type name of the stage these options are for (`org.osbuild.hostname`, …).
    static var stageType: String { get }
}

extension ManifestStage {
    /// A stage of `O.stageType` whose options are `options` encoded as JSON:
    /// nil optionals are left out, everything else is written.
    package init<O: StageOptionsType>(
        _ options: O, inputs: [String: Input] = [:], devices: [String: Device] = [:],
        mounts: [Mount] = []
    ) {
        self.init(type: O.stageType, encoding: options, inputs: inputs, devices: devices, mounts: mounts)
    }
}
