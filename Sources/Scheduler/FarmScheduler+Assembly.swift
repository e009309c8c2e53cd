import Crypto
import Foundation
import Logging
import Manifest
import Protocol
import Stages

extension FarmScheduler {
    /// Runs an assembly the core started (`SchedulerAction.startAssembly`).
    func runAssembly(_ jobID: String, _ build: FarmBuild) {
        let runner = AssemblyRunner(
            scheduler: self, buildID: build.id, jobID: jobID, manifest: build.manifest, ids: build.ids,
            exports: build.exports, store: store, sources: sources, registry: registry,
            logger: logger, logDirectory: "\(config.logsDirectory)/\(build.id)",
            artifactsDirectory: "\(config.artifactsDirectory)/\(build.id)",
            hiding: config.hiddenFromAssembly)
        Task { await runner.run() }
    }

    func assemblyProgress(_ buildID: String, _ jobID: String, _ e: ExecutionEvent) {
        switch e {
        case .stageStarted(let p, let i, let n, let type):
            act { $0.assemblyStageStarted(buildID, jobID, pipeline: p, index: i, count: n, type: type) }
        case .stageFinished(let p, let i, let n, let type, let secs):
            act { $0.assemblyStageFinished(buildID, jobID, pipeline: p, index: i, count: n, type: type, seconds: secs) }
        default:
            break
        }
    }

    func assemblyFinished(_ buildID: String, _ jobID: String, artifacts: [Artifact], seconds: Double) async {
        act { $0.assemblyEnded() }
        defer { act { $0.startAssemblies() } }
        guard core.builds[buildID] != nil else { return }
        do {
            try await records.insertArtifacts(buildID: buildID, artifacts)
        } catch {
            return assemblyFailed(buildID, jobID, reason: "cannot record artifacts: \(error)", logTail: [])
        }
        let names = artifacts.map { "\($0.name) (\(SchedulerCore.decimal(Double($0.size) / 1e6)) MB)" }
        let message = "assembled \(names.joined(separator: ", ")) in \(SchedulerCore.decimal(seconds)) s"
        act { $0.assembled(buildID, jobID, message: message) }
    }

    func assemblyFailed(_ buildID: String, _ jobID: String, reason: String, logTail: [String]) {
        act { $0.assemblyEnded() }
        defer { act { $0.startAssemblies() } }
        guard core.builds[buildID] != nil else { return }
        act { $0.assemblyFailed(buildID, jobID, reason: reason, logTail: logTail) }
    }
}

/// A file a build produced, kept under the scheduler's artifacts directory.
struct Artifact: Sendable {
    var name: String
    var path: String
    var size: UInt64
    var sha256: [UInt8]
}

/// Runs a build's assembly pipelines on the scheduler from stored trees and
/// keeps the exported files as artifacts.
struct AssemblyRunner: Sendable, ExecutionObserver {
    let scheduler: FarmScheduler
    let buildID: String
    let jobID: String
    /// Validated at submit (or recovery), with its content IDs.
    let manifest: BuildManifest
    let ids: ContentIDs
    let exports: [String]
    let store: TreeStore
    let sources: SourceCache
    let registry: StageRegistry
    let logger: Logger
    let logDirectory: String
    let artifactsDirectory: String
    /// What the stages' programs must not see (`SchedulerConfiguration.hiddenFromAssembly`).
    let hiding: [String]

    func event(_ event: ExecutionEvent) {
        let (s, b, j) = (scheduler, buildID, jobID)
        Task { await s.assemblyProgress(b, j, event) }
    }

    func run() async {
        let t0 = ContinuousClock.now
        let executor = Executor(
            registry: registry, store: store, sources: sources, logger: logger, observer: self,
            logDirectory: logDirectory, hiding: hiding)
        do {
            let result = try await executor.run(validated: manifest, ids: ids, exports: exports)
            let artifacts = try await collect(result.exports)
            await scheduler.assemblyFinished(buildID, jobID, artifacts: artifacts, seconds: (ContinuousClock.now - t0).seconds)
        } catch let ExecutorError.stageFailed(pipeline, index, count, type, reason, log) {
            let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").suffix(20).map(String.init) ?? []
            await scheduler.assemblyFailed(
                buildID, jobID, reason: "\(pipeline) stage \(index + 1)/\(count) \(type) failed: \(reason)",
                logTail: tail)
        } catch {
            await scheduler.assemblyFailed(buildID, jobID, reason: "\(error)", logTail: [])
        }
    }

    /// Links (or copies) every regular file of the export trees into the
    /// artifacts directory.
    func collect(_ exports: [String: String]) async throws -> [Artifact] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: artifactsDirectory, withIntermediateDirectories: true)
        var out: [Artifact] = []
        for (export, tree) in exports.sorted(by: { $0.key < $1.key }) {
            guard let walker = fm.enumerator(atPath: tree) else { continue }
            for case let rel as String in walker {
                var st = stat()
                guard lstat("\(tree)/\(rel)", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                var name = (rel as NSString).lastPathComponent
                if out.contains(where: { $0.name == name }) { name = "\(export)-\(name)" }
                let dest = "\(artifactsDirectory)/\(name)"
                try? fm.removeItem(atPath: dest)
                if link("\(tree)/\(rel)", dest) != 0 {
                    try fm.copyItem(atPath: "\(tree)/\(rel)", toPath: dest)
                }
                // Hashed on first fetch: a local `kiln build` never pays for it.
                out.append(Artifact(name: name, path: dest, size: UInt64(st.st_size), sha256: []))
            }
        }
        return out
    }

    /// Hashes a file on a thread of its own (never on a cooperative thread).
    static func sha256(_ path: String) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<[UInt8], Error>) in
            Thread {
                do {
                    guard let h = FileHandle(forReadingAtPath: path) else {
                        throw SchedulerError.notFound("cannot read \(path)")
                    }
                    defer { try? h.close() }
                    var hasher = SHA256()
                    while let chunk = try h.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
                    done.resume(returning: Array(hasher.finalize()))
                } catch {
                    done.resume(throwing: error)
                }
            }.start()
        }
    }
}
