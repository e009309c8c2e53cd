import CZeroMQ

/// A CURVE key pair in Z85 text form (40 characters each), as libzmq makes them.
package struct CurveKeyPair: Sendable, Hashable {
    package let publicKey: String
    package let secretKey: String

    package static func generate() throws(ZMQError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41)
        var sec = [CChar](repeating: 0, count: 41)
        try check(zmq_curve_keypair(&pub, &sec), "zmq_curve_keypair")
        return CurveKeyPair(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// The libzmq version this process runs against, e.g. "4.3.4".
    package static var libraryVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
