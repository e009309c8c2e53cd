import Foundation

/// The farm at one instant, as `kiln top`, `kiln top --once --json` and the
/// dashboard's `/api/snapshot` show it (one document for all three, so they
/// cannot disagree). JSON keys are snake_case; docs/operating.md describes them.
package struct FarmSnapshot: Codable, Sendable, Equatable {
    package var generatedUnixMs: Int64
    package var scheduler: SchedulerInfo
    package var agents: [Agent]
    package var queues: [Queue]
    package var running: [RunningBuild]
    /// Throughput over the last 1, 15 and 60 minutes.
    package var windows: [Window]
    /// The last 60 minutes, one entry per minute, oldest first.
    package var series: [Minute]
    /// The most recent failed builds, newest first.
    package var failures: [Failure]

    package struct SchedulerInfo: Codable, Sendable, Equatable {
        package var version: String
        package var epoch: UInt64
        package var startedUnixMs: Int64
        package var assembliesRunning: Int
        package var assembliesQueued: Int
        package var droppedMessages: Int
    }

    package struct Agent: Codable, Sendable, Equatable {
        package var id: String
        package var arches: [String]
        package var emulatedArches: [String]
        package var state: String
        package var slots: Int
        package var slotsInUse: Int
        package var heartbeatAgeS: Double
        package var freeDiskBytes: UInt64
        package var version: String
        package var jobs: [AgentJob]
    }

    package struct AgentJob: Codable, Sendable, Equatable {
        package var buildId: String
        package var jobId: String
        package var pipeline: String
        package var state: String
        package var stageIndex: Int
        package var stageCount: Int
        package var stageType: String
        package var emulated: Bool
    }

    package struct Queue: Codable, Sendable, Equatable {
        package var arch: String
        /// Tree jobs waiting for an agent.
        package var depth: Int
        package var oldestAgeS: Double
        package var agentsOnline: Int
        package var slotsTotal: Int
        package var slotsBusy: Int
    }

    package struct RunningBuild: Codable, Sendable, Equatable {
        package var buildId: String
        package var label: String
        package var arch: String
        package var distro: String
        package var imageType: String
        package var state: String
        package var ageS: Double
        package var jobsTotal: Int
        package var jobsDone: Int
        /// 0…1: finished jobs plus the stage fraction of running ones.
        package var progress: Double
        /// What it is doing, e.g. "tree stage 4/19 org.osbuild.apt on agent-a".
        package var current: String
    }

    package struct Window: Codable, Sendable, Equatable {
        package var minutes: Int
        package var buildsFinished: Int
        package var buildsSucceeded: Int
        package var buildsFailed: Int
        package var buildsPerHour: Double
        package var jobsFinished: Int
        package var jobsPerMinute: Double
        package var streamedBytes: UInt64
        package var streamedMbPerS: Double
        package var treeCacheHits: Int
        package var treeCacheMisses: Int
        /// Hits / (hits + misses); nil when no tree job finished.
        package var cacheHitRate: Double?
        package var imageTypes: [ImageTypeTimes]
    }

    package struct ImageTypeTimes: Codable, Sendable, Equatable {
        package var imageType: String
        /// Succeeded builds in the window.
        package var builds: Int
        package var medianS: Double
        package var p95S: Double
    }

    package struct Minute: Codable, Sendable, Equatable {
        package var startUnixMs: Int64
        package var buildsSucceeded: Int
        package var buildsFailed: Int
        package var jobsFinished: Int
        package var streamedBytes: UInt64
        package var treeCacheHits: Int
        package var treeCacheMisses: Int
    }

    package struct Failure: Codable, Sendable, Equatable {
        package var buildId: String
        package var label: String
        package var arch: String
        package var imageType: String
        package var finishedUnixMs: Int64
        package var failure: String
    }
}

/// Figures over a window of history (`kiln report --since`); from SQLite,
/// so they survive restarts.
package struct FarmReport: Codable, Sendable, Equatable {
    package var sinceUnixMs: Int64
    package var untilUnixMs: Int64
    package var totals: Group
    /// Per architecture and image type, most builds first.
    package var groups: [Group]
    package var cache: Cache
    package var queueWait: [QueueWait]
    /// Stage types by total time spent, slowest first (at most 10).
    package var slowestStages: [Stage]

    package struct Group: Codable, Sendable, Equatable {
        package var arch: String
        package var imageType: String
        package var builds: Int
        package var succeeded: Int
        package var failed: Int
        package var cancelled: Int
        /// succeeded / (succeeded + failed); nil without either.
        package var successRate: Double?
        /// Of succeeded builds, submit to finish.
        package var medianS: Double?
        package var p95S: Double?
    }

    package struct Cache: Codable, Sendable, Equatable {
        package var treeJobs: Int
        package var treeCacheHits: Int
        package var hitRate: Double?
        /// Build time and stream bytes the hits did not spend (what the
        /// jobs that made those trees cost).
        package var savedSeconds: Double
        package var savedBytes: UInt64
        package var streamedBytes: UInt64
    }

    package struct QueueWait: Codable, Sendable, Equatable {
        package var arch: String
        package var attempts: Int
        package var medianS: Double
        package var p95S: Double
    }

    package struct Stage: Codable, Sendable, Equatable {
        package var stage: String
        package var mode: String
        package var runs: Int
        package var totalS: Double
        package var medianS: Double
        package var p95S: Double
        package var maxS: Double
    }
}

package enum TelemetryJSON {
    package static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws -> [UInt8] {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try e.encode(value))
    }

    package static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(type, from: Data(bytes))
    }

    /// Nearest-rank percentile (p in 0…1) of unsorted values; nil when empty.
    package static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}
