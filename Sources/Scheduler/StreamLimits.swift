import Foundation
import Synchronization
import Protocol
import Stages

/// What one attempt's tree stream may cost the scheduler at most. An agent
/// chooses none of it: past a limit the attempt fails with a reason naming
/// the limit and its configuration key, and its partial data is removed.
package struct StreamLimits: Sendable, Equatable {
    /// Length of the compressed stream (`stream-max-compressed-gib`).
    package var maxCompressedBytes: UInt64 = 8 << 30
    /// File contents, entries and the zstd window of the extracted tree
    /// (`stream-max-extracted-gib`, `stream-max-entries`, `stream-window-log-max`).
    package var archive = TreeArchive.Limits.default
    /// Free space the store's filesystem keeps beyond the credit an agent
    /// holds (`store-free-reserve-gib`): credit that would eat into it is
    /// not granted and the attempt fails instead.
    package var freeSpaceReserve: UInt64 = 2 << 30
    /// Below this many bytes free on the store's filesystem credit is held
    /// back rather than refused: the agent waits and the stream goes on
    /// when space returns (the scheduler's `--min-free-gib`; 0: never).
    package var holdCreditBelowFree: UInt64 = 0

    package init() {}

    package static let `default` = StreamLimits()

    /// Whether credit is to be held back now (`holdCreditBelowFree`).
    static func holdsCredit(_ path: String, below threshold: UInt64) -> Bool {
        guard threshold > 0, case .success(let free) = freeBytes(path) else { return false }
        return free < threshold
    }

    /// Whether the filesystem of `path` has `reserve + wanted` bytes free
    /// for an unprivileged writer; the refusal says how much it has.
    static func checkFreeSpace(_ path: String, reserve: UInt64, wanted: UInt64) -> StreamError? {
        let free: UInt64
        switch freeBytes(path) {
        case .success(let bytes): free = bytes
        case .failure(let error): return error
        }
        let (needed, overflow) = reserve.addingReportingOverflow(wanted)
        guard overflow || free < needed else { return nil }
        return .overLimit(limit: "free space (store-free-reserve-gib, \(reserve) bytes kept free)",
                          detail: "\(path) has \(free) bytes free, \(overflow ? "more than can be counted" : "\(needed)") needed "
                              + "to take \(wanted) more bytes; free space in the store or lower the reserve")
    }

    /// Free bytes for an unprivileged writer on the filesystem of `path`. A
    /// reading at most `freeSpaceReadingAge` old is used again: thousands of
    /// credit decisions a second (two per small tree) share one `statvfs`,
    /// and a figure 10 ms old is as good as a new one against a reserve of
    /// gigabytes.
    static func freeBytes(_ path: String) -> Result<UInt64, StreamError> {
        let now = ContinuousClock.now
        if let reading = freeSpaceReadings.withLock({ $0[path] }), now - reading.at < freeSpaceReadingAge {
            return .success(reading.bytes)
        }
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else {
            return .failure(.spool(path: path, operation: "statvfs", reason: String(cString: strerror(errno))))
        }
        let bytes = UInt64(fs.f_bavail) * UInt64(fs.f_frsize)
        freeSpaceReadings.withLock { readings in
            if readings.count > 64 { readings.removeAll() }  // paths are a daemon's few stores; bounded anyway
            readings[path] = (now, bytes)
        }
        return .success(bytes)
    }

    static let freeSpaceReadingAge = Duration.milliseconds(10)
    private static let freeSpaceReadings = Mutex<[String: (at: ContinuousClock.Instant, bytes: UInt64)]>([:])
}
