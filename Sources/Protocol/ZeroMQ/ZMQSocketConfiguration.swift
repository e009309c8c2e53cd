import CZeroMQ

/// How a `ZMQSocketThread` sets up its socket.
package struct ZMQSocketConfiguration: Sendable {
    package enum Kind: Sendable { case router, dealer }

    package enum Attachment: Sendable {
        case bind(String)
        case connect(String)
    }

    package enum Curve: Sendable {
        /// The socket authenticates peers; a `ZAPHandler` on the same context
        /// (started first) decides who is admitted, under `zapDomain`.
        case server(keys: CurveKeyPair, zapDomain: String)
        /// The socket talks only to the server that holds `serverPublicKey`.
        case client(keys: CurveKeyPair, serverPublicKey: String)
    }

    package var kind: Kind
    package var attachment: Attachment
    package var curve: Curve?
    /// `ZMQ_MAXMSGSIZE`: a peer sending a larger frame is disconnected by libzmq.
    package var maxMessageSize: Int64 = Int64(Framing.Limits.default.maxFrameBytes)
    /// `ZMQ_ROUTING_ID` of a DEALER, e.g. the agent id; nil: libzmq picks one.
    package var routingID: [UInt8]?
    /// ZMTP heartbeats (`ZMQ_HEARTBEAT_IVL`/`_TIMEOUT`) in ms; 0: off.
    package var heartbeatIntervalMS: Int32 = 0
    package var heartbeatTimeoutMS: Int32 = 0
    /// `ZMQ_SNDHWM`/`ZMQ_RCVHWM` in messages.
    package var highWaterMark: Int32 = 1000
    /// How long a DEALER's send may wait for a peer to take it (no connection
    /// yet, handshake refused, high-water mark) before it fails with EAGAIN;
    /// nil waits until close. An agent uses the failure to rebuild its socket.
    package var sendTimeout: Duration? = .seconds(5)
    /// What the socket's thread takes from peers (`InboundLimits`).
    package var inbound = InboundLimits()

    /// Bounds on what peers can make a socket's thread hold. A message past
    /// one is dropped (and reported on `ZMQSocketThread.drops`), not queued:
    /// the thread keeps reading, so libzmq's queues stay short as well.
    package struct InboundLimits: Sendable {
        /// Frames of one message, a ROUTER's identity frame included
        /// (Kiln's messages have at most four).
        package var maxFrames = 4
        /// Bytes of all frames of one message (the largest envelope and data frame Framing admits, and room).
        package var maxMessageBytes = Framing.Limits.default.maxEnvelopeBytes + Framing.Limits.default.maxDataBytes + (64 << 10)
        /// Bytes received and not yet taken from `inbound`, over all peers;
        /// each message counts at least `messageCost`.
        package var maxQueuedBytes = 256 << 20
        /// The same for one peer of a ROUTER (its CURVE key, else its
        /// routing identity), so that one peer cannot fill the queue.
        package var maxQueuedBytesPerPeer = 64 << 20
        /// Messages of one peer of a ROUTER received and not yet taken.
        package var maxQueuedMessagesPerPeer = 4096
        /// What a message costs beyond its bytes (the work it makes).
        package var messageCost = 512

        package init() {}
    }

    package init(_ kind: Kind, _ attachment: Attachment, curve: Curve? = nil) {
        self.kind = kind
        self.attachment = attachment
        self.curve = curve
    }

    /// Applies every option to a fresh socket (before bind/connect).
    func apply(to socket: ZMQRawSocket) throws(ZMQError) {
        try socket.set(ZMQ_LINGER, Int32(0), "ZMQ_LINGER")
        try socket.set(ZMQ_MAXMSGSIZE, maxMessageSize, "ZMQ_MAXMSGSIZE")
        try socket.set(ZMQ_SNDHWM, highWaterMark, "ZMQ_SNDHWM")
        try socket.set(ZMQ_RCVHWM, highWaterMark, "ZMQ_RCVHWM")
        if kind == .router {
            try socket.set(ZMQ_ROUTER_MANDATORY, Int32(1), "ZMQ_ROUTER_MANDATORY")
        } else {
            // Queue only on completed connections (handshake done): a refused
            // or absent peer makes sends wait and then time out, instead of
            // piling up on a pipe that will never open.
            try socket.set(ZMQ_IMMEDIATE, Int32(1), "ZMQ_IMMEDIATE")
        }
        if let routingID {
            try socket.set(ZMQ_ROUTING_ID, routingID, "ZMQ_ROUTING_ID")
        }
        if heartbeatIntervalMS > 0 {
            try socket.set(ZMQ_HEARTBEAT_IVL, heartbeatIntervalMS, "ZMQ_HEARTBEAT_IVL")
            try socket.set(ZMQ_HEARTBEAT_TIMEOUT, heartbeatTimeoutMS, "ZMQ_HEARTBEAT_TIMEOUT")
        }
        switch curve {
        case nil:
            break
        case .server(let keys, let domain):
            try socket.set(ZMQ_CURVE_SERVER, Int32(1), "ZMQ_CURVE_SERVER")
            try socket.set(ZMQ_CURVE_SECRETKEY, keys.secretKey, "ZMQ_CURVE_SECRETKEY")
            try socket.set(ZMQ_ZAP_DOMAIN, domain, "ZMQ_ZAP_DOMAIN")
            // Without a ZAP handler libzmq would admit any client: enforce it (fail closed).
            try socket.set(Int32(KILN_ZMQ_ZAP_ENFORCE_DOMAIN), Int32(1), "ZMQ_ZAP_ENFORCE_DOMAIN")
        case .client(let keys, let serverPublicKey):
            try socket.set(ZMQ_CURVE_SERVERKEY, serverPublicKey, "ZMQ_CURVE_SERVERKEY")
            try socket.set(ZMQ_CURVE_PUBLICKEY, keys.publicKey, "ZMQ_CURVE_PUBLICKEY")
            try socket.set(ZMQ_CURVE_SECRETKEY, keys.secretKey, "ZMQ_CURVE_SECRETKEY")
        }
    }

    var socketType: Int32 { kind == .router ? ZMQ_ROUTER : ZMQ_DEALER }
}
