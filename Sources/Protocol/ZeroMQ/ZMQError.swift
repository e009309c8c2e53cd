import CZeroMQ
import Threads

/// A failed libzmq call.
package struct ZMQError: Error, CustomStringConvertible {
    package let operation: String
    package let code: Int32
    package var description: String { "\(operation): \(String(cString: zmq_strerror(code)))" }
}

@inline(__always)
package func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(ZMQError) {
    if rc == -1 { throw ZMQError(operation: operation(), code: zmq_errno()) }
}

extension EventFD {
    /// An eventfd for a socket thread's wake-ups, failing as the socket layer does.
    static func forSocket() throws(ZMQError) -> EventFD {
        do { return try EventFD() } catch { throw ZMQError(operation: "eventfd", code: error.code) }
    }
}
