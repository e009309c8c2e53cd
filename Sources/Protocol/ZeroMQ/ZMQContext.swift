import CZeroMQ

/// A libzmq context. Every socket thread keeps its context alive, so the
/// context is terminated (`zmq_ctx_term`, which waits for its sockets) only
/// after the last socket has closed. `inproc://` endpoints and the ZAP handler
/// work only between sockets of the same context.
package final class ZMQContext: @unchecked Sendable {
    // libzmq contexts are thread safe.
    package let handle: UnsafeMutableRawPointer

    package init() throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError(operation: "zmq_ctx_new", code: zmq_errno()) }
        self.handle = handle
    }

    deinit { zmq_ctx_term(handle) }
}
