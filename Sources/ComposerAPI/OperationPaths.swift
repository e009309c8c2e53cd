package import Foundation

/// The document's paths and the methods each takes, to tell "no such path"
/// (404) from "not with this method" (405, with `Allow`).
enum OperationPaths {
    /// Path templates split into components (`{id}` matches any one component), with their methods.
    static let all: [(components: [Substring], methods: [String])] = {
        guard let document = try? JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any],
            let paths = document["paths"] as? [String: Any]
        else { return [] }
        return paths.map { path, item in
            let methods = ((item as? [String: Any]) ?? [:]).keys.filter { ["get", "post", "put", "patch", "delete"].contains($0) }
            return (path.split(separator: "/"), methods.map { $0.uppercased() }.sorted())
        }
    }()

    /// The methods the document allows on `requestPath` (empty: no such path).
    static func methods(for requestPath: String) -> [String] {
        guard requestPath.hasPrefix(ComposerAPI.basePath) else { return [] }
        let components = requestPath.dropFirst(ComposerAPI.basePath.count).split(separator: "/")
        return all.first { template in
            template.components.count == components.count
                && zip(template.components, components).allSatisfy { t, c in (t.hasPrefix("{") && t.hasSuffix("}")) || t == c }
        }?.methods ?? []
    }
}
