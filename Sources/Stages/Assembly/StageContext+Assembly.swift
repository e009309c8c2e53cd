import Foundation

extension StageContext {
    /// Host path of a file an assembly stage names with its `filename`
    /// option: relative to the output tree (a leading `/` is ignored).
    package func outputFile(_ filename: String) throws -> String {
        let relative = String(filename.drop { $0 == "/" })
        guard !relative.isEmpty else { throw StageError.badPath(path: filename, reason: "filename names no file") }
        return try TreePath.resolve("/" + relative, in: tree)
    }

    /// Hex sha256 of a file, computed by `sha256sum` off the cooperative threads.
    package func sha256(file path: String) async throws -> String {
        String(try await output(["sha256sum", "--", path]).prefix(64))
    }

    /// The device `name`, checked against its file.
    package func region(_ name: String) throws -> ResolvedRegion {
        try ResolvedRegion(device(name), tree: tree)
    }

    /// Host path of the directory `source` inside the input tree `input`,
    /// looked up without following any symbolic link (`ConfinedPath`).
    package func inputDirectory(_ source: String, input: String = "tree") throws -> String {
        let root = try inputTree(input)
        let directory: ConfinedPath
        do {
            directory = try ConfinedPath(source, in: root, kind: .directory)
        } catch {
            guard case .badPath(let path, let reason) = error else { throw error }
            throw StageError.badPath(path: path, reason: "\(reason) (\(stageType): options.source \"\(source)\" of input \"\(input)\")")
        }
        return directory.host
    }
}
