import CZeroMQ

/// Thin, non-owning helpers over a libzmq socket pointer. Only the thread
/// that owns the socket calls them.
package struct ZMQRawSocket {
    package let handle: UnsafeMutableRawPointer

    package init(_ handle: UnsafeMutableRawPointer) { self.handle = handle }

    package func set(_ option: Int32, _ value: Int32, _ name: @autoclosure () -> String) throws(ZMQError) {
        var value = value
        try check(zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size), "zmq_setsockopt(\(name()))")
    }

    package func set(_ option: Int32, _ value: Int64, _ name: @autoclosure () -> String) throws(ZMQError) {
        var value = value
        try check(zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size), "zmq_setsockopt(\(name()))")
    }

    package func set(_ option: Int32, _ value: [UInt8], _ name: @autoclosure () -> String) throws(ZMQError) {
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        try check(rc, "zmq_setsockopt(\(name()))")
    }

    package func set(_ option: Int32, _ value: String, _ name: @autoclosure () -> String) throws(ZMQError) {
        try set(option, Array(value.utf8), name())
    }

    /// The endpoint the socket last bound, with a wildcard port resolved.
    package func lastEndpoint() throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var length = buffer.count
        try check(zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &length), "zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
        return String(cString: buffer)
    }

    /// Sends all frames as one message. With `ZMQ_DONTWAIT`, EAGAIN on the
    /// first frame means nothing was sent; later frames cannot fail that way.
    package func send(_ frames: [[UInt8]], flags: Int32) throws(ZMQError) {
        for (index, frame) in frames.enumerated() {
            let more = index < frames.count - 1 ? ZMQ_SNDMORE : 0
            let rc = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags | more) }
            try check(rc, "zmq_send")
        }
    }

    /// Receives one whole message, or nil when none is waiting (EAGAIN with
    /// `ZMQ_DONTWAIT`).
    package func receive(flags: Int32) throws(ZMQError) -> ZMQMessage? {
        var message = ZMQMessage(frames: [])
        var msg = zmq_msg_t()
        while true {
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            if zmq_msg_recv(&msg, handle, message.frames.isEmpty ? flags : 0) == -1 {
                let code = zmq_errno()
                if code == EAGAIN && message.frames.isEmpty { return nil }
                throw ZMQError(operation: "zmq_msg_recv", code: code)
            }
            let size = zmq_msg_size(&msg)
            if let data = zmq_msg_data(&msg), size > 0 {
                message.frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                message.frames.append([])
            }
            // A ROUTER makes the identity frame itself; the peer's metadata is on the others.
            if message.userID == nil, let user = zmq_msg_gets(&msg, "User-Id") {
                message.userID = String(cString: user)
            }
            if zmq_msg_more(&msg) == 0 { return message }
        }
    }
}
