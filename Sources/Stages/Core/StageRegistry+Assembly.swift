extension StageRegistry {
    /// Architecture-neutral stages that turn trees into images.
    package static let assemblyStages: [any Stage.Type] = [
    ]
}
