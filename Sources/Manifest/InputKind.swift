/// What a stage takes under one input name. A stage states its inputs; an
/// input it does not state, or of another kind, is refused by validation.
public enum InputKind: Sendable, Hashable, CustomStringConvertible {
    /// Files from the manifest's sources, by checksum
    /// (`org.osbuild.files` with origin `org.osbuild.source`).
    case sourceFiles
    /// The finished tree of one earlier pipeline
    /// (`org.osbuild.tree` with origin `org.osbuild.pipeline`).
    case pipelineTree
    /// Files of earlier pipelines' trees, each named by its reference's
    /// options `{"file": …}` (`org.osbuild.files` with origin `org.osbuild.pipeline`).
    case pipelineFiles

    /// Whether `input` is of this kind.
    public func accepts(_ input: Input) -> Bool {
        switch self {
        case .sourceFiles: input.type == "org.osbuild.files" && input.origin == Input.sourceOrigin
        case .pipelineTree: input.type == "org.osbuild.tree" && input.origin == Input.pipelineOrigin && input.references.count == 1
        case .pipelineFiles: input.type == "org.osbuild.files" && input.origin == Input.pipelineOrigin
        }
    }

    public var description: String {
        switch self {
        case .sourceFiles: "source files (type org.osbuild.files, origin org.osbuild.source)"
        case .pipelineTree: "one pipeline's tree (type org.osbuild.tree, origin org.osbuild.pipeline, one reference)"
        case .pipelineFiles: "files of a pipeline (type org.osbuild.files, origin org.osbuild.pipeline, references with options {\"file\": …})"
        }
    }
}
