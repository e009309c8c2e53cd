import Foundation
import Logging
import Manifest

/// Runs the pipelines of a manifest in dependency order with caching by
/// content ID: a pipeline whose ID is stored runs nothing; otherwise work
/// resumes from its newest stored checkpoint.
package struct Executor: Sendable {
    package let registry: StageRegistry
    package let store: TreeStore
    package let sources: SourceCache
    package let logger: Logger
    package let observer: any ExecutionObserver
    /// Directory for stage logs.
    package let logDirectory: String
    /// Paths the stages' programs must not see (the scheduler's keys and state; see `CommandRunner.hiding`).
    package let hiding: [String]
    /// The longest one stage may run (nil: no limit). A stage past it is
    /// cancelled (its process group killed, its mounts released) and the run
    /// fails with `ExecutorError.stageTimedOut`.
    package var stageTimeout: Duration?

    package init(
        registry: StageRegistry = .standard, store: TreeStore, sources: SourceCache, logger: Logger,
        observer: any ExecutionObserver = SilentObserver(), logDirectory: String, hiding: [String] = []
    ) {
        self.registry = registry
        self.store = store
        self.sources = sources
        self.logger = logger
        self.observer = observer
        self.logDirectory = logDirectory
        // Never the store or the source cache, nor a directory holding one: the stages work in them.
        let inside = { (path: String, dir: String) in path == dir || path.hasPrefix(dir.hasSuffix("/") ? dir : dir + "/") }
        self.hiding = hiding.filter { !inside(store.root, $0) && !inside(sources.root, $0) }
    }

    /// What a run produced.
    package struct Result: Sendable {
        /// Export pipeline name → path of its finished tree in the store (read only).
        package var exports: [String: String]
        /// Pipelines that ran at least one stage.
        package var ran: [String]
        /// Pipelines taken from the store.
        package var cached: [String]
        /// Stages that ran, in order (`pipeline/type`).
        package var stagesRun: [String]
    }

    /// Validates `manifest` and produces the `exports` pipelines.
    package func run(_ manifest: BuildManifest, exports: [String]) async throws -> Result {
        try manifest.validate(stages: registry)
        for e in exports where manifest.pipeline(named: e) == nil {
            throw ExecutorError.unknownExport(name: e, available: manifest.pipelines.map(\.name))
        }
        return try await run(validated: manifest, ids: try ContentIDs(manifest), exports: exports)
    }

    /// Produces the `exports` pipelines of a manifest that was already
    /// validated against this registry, with its content IDs (the scheduler
    /// checks a manifest once, at submit, not again for its assembly).
    package func run(validated manifest: BuildManifest, ids: ContentIDs, exports: [String]) async throws -> Result {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        // Every tree and checkpoint of the manifest stays in the store while
        // this runs (a prune elsewhere in the process leaves them), leased
        // before the store is asked what it holds.
        let lease = store.pin(ids)
        defer { lease.release() }
        let plan = try manifest.plan(exports: exports)
        // Only pipelines that are not stored, and not needed solely by stored ones.
        var needed = Set<String>()
        func need(_ name: String) {
            guard !needed.contains(name), let p = manifest.pipeline(named: name) else { return }
            needed.insert(name)
            if !store.contains(ids.pipelines[name]!) { manifest.dependencies(of: p).forEach(need) }
        }
        exports.forEach(need)
        var result = Result(exports: [:], ran: [], cached: [], stagesRun: [])
        for pipeline in plan where needed.contains(pipeline.name) {
            let pid = ids.pipelines[pipeline.name]!
            if store.contains(pid) {
                store.touch(pid)
                result.cached.append(pipeline.name)
                observer.event(.pipelineCached(name: pipeline.name))
                continue
            }
            let ran = try await runPipeline(pipeline, manifest: manifest, ids: ids)
            result.ran.append(pipeline.name)
            result.stagesRun += ran.map { "\(pipeline.name)/\($0)" }
        }
        for e in exports { result.exports[e] = store.treePath(ids.pipelines[e]!) }
        return result
    }

    /// Runs one pipeline from its newest checkpoint; returns the stage types run.
    private func runPipeline(_ pipeline: Pipeline, manifest: BuildManifest, ids: ContentIDs) async throws -> [String] {
        let stageIDs = ids.stages[pipeline.name] ?? []
        let count = pipeline.stages.count
        let started = ContinuousClock.now
        let commands = CommandRunner(logPath: "\(logDirectory)/\(pipeline.name).store.log", logger: logger)
        // Newest checkpoint before the end.
        var first = 0
        for i in stride(from: count - 2, through: 0, by: -1) where store.contains(stageIDs[i]) {
            first = i + 1
            break
        }
        observer.event(.pipelineStarted(name: pipeline.name, stages: count, restored: first))
        let work = try store.makeWorkDirectory()
        var committed = false
        defer {
            if !committed {
                MountTable.shared.release(under: work)
                try? FileManager.default.removeItem(atPath: work)
            }
        }
        if first > 0 {
            try await store.checkout(stageIDs[first - 1], into: work, commands: commands)
            logger.info("resuming from checkpoint", metadata: ["pipeline.name": "\(pipeline.name)", "stage.index": "\(first)"])
        }
        // Sources for the stages that will run.
        var needed: [String: String] = [:]
        let urls = manifest.sources.values.reduce(into: [String: String]()) { acc, g in
            for (k, v) in g.items { acc[k] = v.url }
        }
        for stage in pipeline.stages[first...] {
            for input in stage.inputs.values where input.origin == Input.sourceOrigin {
                for ref in input.references {
                    guard let url = urls[ref] else { throw SourceError.undeclared(checksum: ref) }
                    needed[ref] = url
                }
            }
        }
        var files: [String: String] = [:]
        if !needed.isEmpty {
            let observer = self.observer
            files = try await sources.provide(needed, commands: commands) { done, total, bytes in
                observer.event(.sources(done: done, total: total, bytes: bytes))
            }
        }
        var ran: [String] = []
        for index in first..<count {
            try Task.checkCancellation()
            let stage = pipeline.stages[index]
            let log = "\(logDirectory)/\(pipeline.name).\(index + 1).\(stage.type).log"
            try? FileManager.default.removeItem(atPath: log)
            let stageCommands = CommandRunner(logPath: log, logger: logger, hiding: hiding)
            let scratch = try store.makeWorkDirectory()
            defer {
                MountTable.shared.release(under: scratch)
                try? FileManager.default.removeItem(atPath: scratch)
            }
            let context = StageContext(
                tree: work, inputs: try resolveInputs(stage, files: files, ids: ids, manifest: manifest),
                devices: try resolveDevices(stage, tree: work), scratch: scratch,
                logger: logger, commands: stageCommands, stageType: stage.type)
            observer.event(.stageStarted(pipeline: pipeline.name, index: index, count: count, type: stage.type))
            let t0 = ContinuousClock.now
            let registry = self.registry
            let path = "pipelines.\(pipeline.name).stages[\(index)]"
            do {
                let inTime = try await Self.within(stageTimeout) {
                    try await registry.run(stage, in: context, path: path)
                }
                if !inTime, let limit = stageTimeout {
                    throw ExecutorError.stageTimedOut(
                        pipeline: pipeline.name, index: index, count: count, type: stage.type,
                        limit: limit, log: log)
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch let e as ExecutorError {
                throw e
            } catch {
                throw ExecutorError.stageFailed(
                    pipeline: pipeline.name, index: index, count: count, type: stage.type,
                    reason: "\(error)", log: log)
            }
            ran.append(stage.type)
            observer.event(
                .stageFinished(
                    pipeline: pipeline.name, index: index, count: count, type: stage.type,
                    seconds: (ContinuousClock.now - t0).seconds))
            if index < count - 1, registry.entries[stage.type]?.checkpoint == true {
                try await store.commit(work, as: stageIDs[index], move: false, commands: commands)
                observer.event(.checkpointStored(pipeline: pipeline.name, index: index))
            }
        }
        let id = stageIDs.last ?? ids.pipelines[pipeline.name]!
        try await store.commit(work, as: id, move: true, commands: commands)
        committed = true
        observer.event(.pipelineFinished(name: pipeline.name, seconds: (ContinuousClock.now - started).seconds))
        return ran
    }

    /// Runs `body`; with a `limit`, cancels it when the limit passes and
    /// returns false once it has wound down (processes killed, mounts released).
    static func within(_ limit: Duration?, _ body: @escaping @Sendable () async throws -> Void) async throws -> Bool {
        guard let limit else {
            try await body()
            return true
        }
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            // The stage's own clean-up (teardown of its process group, its mounts) ends before this returns.
            while (try? await group.next()) != nil {}
            if first { return true }
            try Task.checkCancellation()
            return false
        }
    }

    private func resolveInputs(
        _ stage: ManifestStage, files: [String: String], ids: ContentIDs,
        manifest: BuildManifest
    ) throws -> [String: StageInput] {
        var out: [String: StageInput] = [:]
        for (name, input) in stage.inputs {
            if input.origin == Input.sourceOrigin {
                var map: [String: String] = [:]
                for ref in input.references {
                    guard let p = files[ref] else { throw SourceError.undeclared(checksum: ref) }
                    map[ref] = p
                }
                out[name] = .files(map)
            } else if input.type == "org.osbuild.tree" {
                guard let p = input.pipelineNames.first, let pid = ids.pipelines[p] else {
                    throw StageError.missingInput(stage: stage.type, name: name)
                }
                out[name] = .tree(store.treePath(pid))
            } else {
                var map: [String: String] = [:]
                for ref in input.references {
                    let p = ref.hasPrefix("name:") ? String(ref.dropFirst(5)) : ref
                    guard let pid = ids.pipelines[p] else { throw StageError.missingInput(stage: stage.type, name: name) }
                    guard let file = input.referenceOptions[ref]?[Input.fileOption]?.stringValue else {
                        throw StageError.invalidOptions(reason: "\(stage.type): input \(name): reference \(ref) needs options.file")
                    }
                    // A file of that pipeline's tree, found without following any link out of it.
                    do {
                        map[file] = try ConfinedPath("/" + file, in: store.treePath(pid), kind: .regularFile).host
                    } catch {
                        guard case .badPath(let path, let reason) = error else { throw error }
                        throw StageError.badPath(path: path, reason: "\(reason) (\(stage.type): input \(name), reference \(ref), options.file)")
                    }
                }
                out[name] = .files(map)
            }
        }
        return out
    }

    private func resolveDevices(_ stage: ManifestStage, tree: String) throws -> [String: DeviceRegion] {
        var out: [String: DeviceRegion] = [:]
        for (name, device) in stage.devices {
            typealias Option = Device.LoopbackOption
            guard device.type == Device.loopbackType, let file = device.options[Option.filename]?.stringValue else {
                throw StageError.missingDevice(stage: stage.type, name: name)
            }
            let sector = UInt64(device.options[Option.sectorSize]?.int64Value ?? 512)
            let start = UInt64(device.options[Option.start]?.int64Value ?? 0) * sector
            let size = device.options[Option.size]?.int64Value.map { UInt64($0) * sector }
            out[name] = DeviceRegion(path: try TreePath.resolve("/" + file, in: tree), offset: start, size: size)
        }
        return out
    }
}

extension Duration {
    package var seconds: Double {
        let (s, a) = components
        return Double(s) + Double(a) / 1e18
    }
}
