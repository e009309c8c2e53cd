import CZstd
import Synchronization

/// Streaming zstd decompression with contexts that are kept and reused.
///
/// libarchive's zstd filter makes a new decompression context for every
/// archive it opens, and making one runs CPUID (to pick the BMI2 code path),
/// which under a hypervisor is a VM exit: with the context's first-touch page
/// faults that was ≈5 % of the scheduler's CPU when it stored thousands of
/// small trees (dispatch benchmark, docs/benchmarks.md). Extraction reads
/// plain tar from libarchive and decompresses here; a context, its input
/// buffer and the output buffer handed to libarchive go back to a small
/// process-wide pool afterwards.
final class ZstdDecoder: @unchecked Sendable {  // one extraction at a time: out of the pool while used
    private let context: OpaquePointer
    /// Compressed bytes pulled from the source, `[position, end)` not yet decompressed.
    private let input: UnsafeMutableRawBufferPointer
    private var position = 0
    private var end = 0
    /// Decompressed bytes for libarchive (valid until the next `read`).
    let output: UnsafeMutableRawBufferPointer
    /// A frame is started and not finished (or output is pending).
    private var frameOpen = false
    private var sourceEnded = false
    private var windowLogMax: Int32 = 27

    private init?() {
        guard let context = ZSTD_createDCtx() else { return nil }
        self.context = context
        input = .allocate(byteCount: ZSTD_DStreamInSize(), alignment: 64)
        output = .allocate(byteCount: 1 << 20, alignment: 4096)
    }

    deinit {
        ZSTD_freeDCtx(context)
        input.deallocate()
        output.deallocate()
    }

    private static let pool = Mutex<[ZstdDecoder]>([])
    private static let poolLimit = 8

    /// A reset decoder from the pool, or a new one; nil only when out of memory.
    /// windowLogMax: frames that need a larger window are refused
    /// (`TreeArchiveError.overLimit`) instead of making the decoder allocate it.
    static func take(windowLogMax: Int32) -> ZstdDecoder? {
        guard let decoder = pool.withLock({ $0.popLast() }) ?? ZstdDecoder() else { return nil }
        decoder.windowLogMax = windowLogMax
        // A parameter, unlike the session, survives `reset`: set it for every stream.
        guard ZSTD_isError(ZSTD_DCtx_setParameter(decoder.context, ZSTD_d_windowLogMax, windowLogMax)) == 0 else {
            return nil
        }
        return decoder
    }

    /// Returns `decoder` to the pool (ready for another stream), or frees it when the pool is full.
    static func give(back decoder: ZstdDecoder) {
        decoder.reset()
        pool.withLock { kept in
            if kept.count < poolLimit { kept.append(decoder) }
        }
    }

    private func reset() {
        ZSTD_DCtx_reset(context, ZSTD_reset_session_only)
        (position, end, frameOpen, sourceEnded) = (0, 0, false, false)
    }

    /// Decompresses into `output`, pulling compressed bytes through `source`
    /// (which returns how many it put into the buffer, 0 at the end).
    /// Returns the number of bytes in `output`; 0 at the end of the stream.
    /// Throws `TreeArchiveError.malformed` for corrupt or truncated data.
    func read(from source: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Int {
        var out = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        while true {
            if position < end || frameOpen {
                var into = ZSTD_inBuffer(src: input.baseAddress, size: end, pos: position)
                let hint = ZSTD_decompressStream(context, &out, &into)
                if ZSTD_isError(hint) != 0 {
                    if ZSTD_getErrorCode(hint) == ZSTD_error_frameParameter_windowTooLarge {
                        throw TreeArchiveError.overLimit(
                            limit: "the zstd window (stream-window-log-max, 2^\(windowLogMax) bytes)",
                            detail: "the stream's frame needs a larger window, which would cost the scheduler that much memory")
                    }
                    throw TreeArchiveError.malformed(reason: "zstd: \(String(cString: ZSTD_getErrorName(hint)))")
                }
                position = into.pos
                // 0: the frame is decoded and flushed; more may follow.
                frameOpen = hint != 0
                if out.pos > 0 { return out.pos }
                if position < end { continue }
            }
            if sourceEnded {
                if frameOpen { throw TreeArchiveError.malformed(reason: "zstd: the stream ends inside a frame (truncated)") }
                return 0
            }
            let got = try source(input)
            if got <= 0 {
                sourceEnded = true
            } else {
                (position, end) = (0, min(got, input.count))
            }
        }
    }
}
