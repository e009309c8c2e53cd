/// A connection the ZAP handler refused.
package struct ZAPRefusal: Sendable, Equatable, CustomStringConvertible {
    /// The client's CURVE public key in Z85; empty when it offered no CURVE key.
    package var publicKey: String
    /// The peer's IP address as libzmq reports it (empty for inproc).
    package var address: String
    package var mechanism: String
    package var domain: String
    package var reason: String

    package var description: String {
        "refused \(mechanism) client \(publicKey.isEmpty ? "(no key)" : publicKey)"
            + (address.isEmpty ? "" : " from \(address)") + ": \(reason)"
    }
}
