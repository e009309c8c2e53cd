import CZeroMQ
import Foundation
import Protocol
import Testing

/// Exercises the real libzmq through the CZeroMQ module: CURVE keys and an
/// encrypted round trip over loopback TCP. (The farm's socket layer builds on this.)
@Suite(.serialized) struct ZeroMQLinkTests {
    @Test func curveKeysAreZ85() throws {
        let k = try CurveKeyPair.generate()
        #expect(k.publicKey.count == 40 && k.secretKey.count == 40)
        #expect(k.publicKey != k.secretKey)
        #expect(CurveKeyPair.libraryVersion.hasPrefix("4."))
    }

    @Test func curveRoundTripOverLoopback() throws {
        let server = try CurveKeyPair.generate(), client = try CurveKeyPair.generate()
        let ctx = zmq_ctx_new()!
        defer { zmq_ctx_term(ctx) }
        let rep = zmq_socket(ctx, ZMQ_REP)!, req = zmq_socket(ctx, ZMQ_REQ)!
        defer { zmq_close(rep); zmq_close(req) }
        var zero: Int32 = 0, one: Int32 = 1, timeout: Int32 = 5000
        for s in [rep, req] {
            try check(zmq_setsockopt(s, ZMQ_LINGER, &zero, 4), "linger")
            try check(zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, 4), "rcvtimeo")
        }
        try check(zmq_setsockopt(rep, ZMQ_CURVE_SERVER, &one, 4), "curve server")
        try check(zmq_setsockopt(rep, ZMQ_CURVE_SECRETKEY, server.secretKey, 40), "server secret")
        try check(zmq_bind(rep, "tcp://127.0.0.1:*"), "bind")
        var buf = [CChar](repeating: 0, count: 256)
        var len = buf.count
        try check(zmq_getsockopt(rep, ZMQ_LAST_ENDPOINT, &buf, &len), "last endpoint")
        let endpoint = String(cString: buf)
        try check(zmq_setsockopt(req, ZMQ_CURVE_SERVERKEY, server.publicKey, 40), "server key")
        try check(zmq_setsockopt(req, ZMQ_CURVE_PUBLICKEY, client.publicKey, 40), "client public")
        try check(zmq_setsockopt(req, ZMQ_CURVE_SECRETKEY, client.secretKey, 40), "client secret")
        try check(zmq_connect(req, endpoint), "connect")

        let hello = Array("KILN1 hello".utf8)
        #expect(zmq_send(req, hello, hello.count, 0) == Int32(hello.count))
        var got = [UInt8](repeating: 0, count: 64)
        let n = zmq_recv(rep, &got, got.count, 0)
        try #require(n > 0, "the server received the client's message over CURVE")
        #expect(Array(got.prefix(Int(n))) == hello)
    }
}
