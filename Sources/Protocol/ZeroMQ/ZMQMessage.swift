/// One inbound multipart message as the socket thread received it.
package struct ZMQMessage: Sendable, Equatable {
    package var frames: [[UInt8]]
    /// The peer's authenticated user id: on a CURVE server with Kiln's ZAP
    /// handler, the peer's public key in Z85. nil without ZAP.
    package var userID: String?

    package init(frames: [[UInt8]], userID: String? = nil) {
        self.frames = frames
        self.userID = userID
    }
}
