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
        switch try receive(flags: flags, maxFrames: .max, maxBytes: .max) {
        case .message(let message)?: message
        case .refused?, nil: nil
        }
    }

    /// What `receive(flags:maxFrames:maxBytes:)` got.
    package enum Received {
        case message(ZMQMessage)
        /// The message passed a limit. Only its first frame (a ROUTER's
        /// identity) was copied; the rest was read from libzmq and dropped.
        case refused(first: [UInt8]?, userID: String?, frames: Int, bytes: Int, reason: String)
    }

    /// Receives one whole message, copying its frames only while they stay
    /// within `maxFrames` and `maxBytes` in all: each frame's size is known
    /// before it is copied, so a message past a limit costs Kiln no copy
    /// (libzmq itself holds a multipart message until its last frame has
    /// arrived). nil when none is waiting (EAGAIN with `ZMQ_DONTWAIT`).
    package func receive(flags: Int32, maxFrames: Int, maxBytes: Int) throws(ZMQError) -> Received? {
        var message = ZMQMessage(frames: [])
        var frames = 0, bytes = 0
        var refusal: String?
        var msg = zmq_msg_t()
        while true {
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            if zmq_msg_recv(&msg, handle, frames == 0 ? flags : 0) == -1 {
                let code = zmq_errno()
                if code == EAGAIN && frames == 0 { return nil }
                throw ZMQError(operation: "zmq_msg_recv", code: code)
            }
            let size = zmq_msg_size(&msg)
            frames += 1
            bytes += size
            if refusal == nil {
                if frames > maxFrames {
                    refusal = "more than \(maxFrames) frames"
                } else if bytes > maxBytes {
                    refusal = "more than \(maxBytes) bytes"
                }
            }
            if refusal == nil || frames == 1 {
                if let data = zmq_msg_data(&msg), size > 0 {
                    message.frames.append(Array(UnsafeRawBufferPointer(start: data, count: min(size, refusal == nil ? size : 256))))
                } else {
                    message.frames.append([])
                }
            }
            // A ROUTER makes the identity frame itself; the peer's metadata is on the others.
            if message.userID == nil, let user = zmq_msg_gets(&msg, "User-Id") {
                message.userID = String(cString: user)
            }
            if zmq_msg_more(&msg) == 0 { break }
        }
        guard let refusal else { return .message(message) }
        return .refused(first: message.frames.first, userID: message.userID, frames: frames, bytes: bytes, reason: refusal)
    }
}
