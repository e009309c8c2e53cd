import Foundation
import Images
import Logging
import Manifest
import Stages

/// `kiln build` on one machine: blueprint → depsolve → manifest → executor →
/// image file. (The farm puts the same steps behind the scheduler.)
package struct LocalBuild: Sendable {
    package let executor: Executor
    package let resolver: any PackageResolver

    package init(executor: Executor, resolver: any PackageResolver) {
        self.executor = executor
        self.resolver = resolver
    }

    /// What a build produced.
    package struct Outcome: Sendable {
        package let manifest: BuildManifest
        package let result: Executor.Result
        /// The image file inside the tree store (read only).
        package let artifact: String
    }

    package func manifest(for request: ImageRequest) async throws -> BuildManifest {
        try await ManifestGenerator(resolver: resolver).manifest(for: request)
    }

    /// Builds the image and leaves it in the store; the caller copies it out.
    package func build(_ request: ImageRequest) async throws -> Outcome {
        let manifest = try await manifest(for: request)
        let export = request.imageType.exportPipeline
        let result = try await executor.run(manifest, exports: [export])
        let artifact = try TreePath.resolve("/" + request.imageType.outputFile, in: result.exports[export]!)
        return Outcome(manifest: manifest, result: result, artifact: artifact)
    }
}
