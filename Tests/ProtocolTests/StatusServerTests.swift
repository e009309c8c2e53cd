import Foundation
import HTTPServing
import KilnTestSupport
import Logging
import Protocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, finding 11: 300 connections that never finished their request
/// held 300 of the scheduler's file descriptors, and under a low fd limit the
/// client port went down with them. Here a real server on loopback is held
/// by slow-header and idle peers the way that attack did it.
@Suite struct StatusServerTests {
    /// A TCP connection to 127.0.0.1:port, blocking, with a receive timeout.
    final class Peer: @unchecked Sendable {
        let fd: Int32
        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(.EMFILE) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(fd)
                throw POSIXError(.ECONNREFUSED)
            }
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        /// False once the server has closed its end.
        @discardableResult func send(_ text: String) -> Bool {
            text.utf8CString.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) } > 0
        }
        /// True when the server has closed the connection (EOF or reset).
        func closedByServer(waiting: Bool = true) -> Bool {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, waiting ? 0 : Int32(MSG_DONTWAIT))
            return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        }
        deinit { close(fd) }
    }

    /// Connections the server has accepted: established TCP sockets on its
    /// port that have an owner (the kernel queues the ones it has not
    /// accepted yet with inode 0). Other tests' descriptors do not count.
    static func accepted(port: Int) -> Int {
        // Read to its end: a busy host's table is many pages long.
        let table = String(decoding: FileHandle(forReadingAtPath: "/proc/net/tcp")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
        return table.split(separator: "\n").dropFirst().filter { line in
            let f = line.split(separator: " ")
            guard f.count > 9, let local = f[1].split(separator: ":").last, Int(local, radix: 16) == port else { return false }
            return f[3] == "01" && f[9] != "0"
        }.count
    }

    @Test("slow headers and idle connections are closed at the request deadline, and at most maxConnections are open at once")
    func slowPeersCannotHoldTheServer() async throws {
        let server = try await StatusServer.start(
            endpoint: HTTPEndpoint(host: "127.0.0.1", port: 0),
            routes: ["/ping": { _ in .text("pong\n") }], logger: Logger(label: "test"),
            requestTimeout: .seconds(2), maxConnections: 16)
        defer { Task { await server.stop() } }

        // 60 peers: each starts a request and never finishes its head.
        let peers = try (0..<60).map { _ in try Peer(port: server.port) }
        for peer in peers { peer.send("GET /ping HTTP/1.1\r\nHost: kiln\r\n") }
        // The server accepts up to its cap; however long it is given, never more.
        var most = 0
        let until = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < until || most == 0 {
            most = max(most, Self.accepted(port: server.port))
            if ContinuousClock.now > until + .seconds(20) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        // NIO accepts up to 4 in one go before the cap is checked again.
        #expect(most >= 1 && most <= 16 + 4, "the server held \(most) connections open at once; its cap is 16")

        // One peer keeps trickling header bytes: the deadline is on the whole head, not on silence.
        let trickler = peers[0]
        let closed = try await within(15, "the slow-header peer was closed") {
            while true {
                if !trickler.send("X-Slow: 1\r\n") || trickler.closedByServer() { return true }
            }
        }
        #expect(closed)

        // Every one of the 60 is closed by the server in the end (the ones
        // waiting in the backlog are accepted as others close, then time out).
        let allClosed = try await within(30, "all slow peers closed") {
            var open = Set(peers.indices)
            while !open.isEmpty {
                for i in open where peers[i].closedByServer(waiting: false) { open.remove(i) }
                try await Task.sleep(for: .milliseconds(100))
            }
            return true
        }
        #expect(allClosed)

        // The server still answers a well-behaved client.
        let client = try Peer(port: server.port)
        client.send("GET /ping HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n\r\n")
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let readUntil = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < readUntil {
            let n = recv(client.fd, &chunk, chunk.count, 0)
            if n > 0 { received += chunk.prefix(n) } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { break }
        }
        let text = String(decoding: received, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200") && text.hasSuffix("pong\n"), "\(text)")
    }
}
