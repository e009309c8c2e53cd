import Protocol

/// One job's progress messages, posted one after another in the order the
/// executor reported them. Each message used to be posted from a task of
/// its own, and nothing ordered those tasks: a stage's `finished` could
/// reach the scheduler before its `started`, and the scheduler's stage
/// timings depend on that order.
package final class OrderedPoster: Sendable {
    private let continuation: AsyncStream<WireMessage>.Continuation
    private let task: Task<Void, Never>

    /// `sink` posts one message (`BuildAgent.post`); it is called for one message at a time.
    package init(_ sink: @escaping @Sendable (WireMessage) async -> Void) {
        let (stream, continuation) = AsyncStream<WireMessage>.makeStream()
        self.continuation = continuation
        task = Task {
            for await message in stream { await sink(message) }
        }
    }

    /// Queues `message` behind what was sent before it; returns at once
    /// (the executor reports from synchronous code).
    package func send(_ message: WireMessage) {
        continuation.yield(message)
    }

    /// Returns once everything sent so far is posted; later sends are dropped.
    /// A job calls it before its result, so no progress follows the result.
    package func finish() async {
        continuation.finish()
        await task.value
    }

    deinit { continuation.finish() }
}
