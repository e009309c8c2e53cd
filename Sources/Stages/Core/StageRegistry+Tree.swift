extension StageRegistry {
    /// Stages that build a target tree (run on an agent of the target architecture).
    package static let treeStages: [any Stage.Type] = [
        InitramfsStage.self,
    ]
}
