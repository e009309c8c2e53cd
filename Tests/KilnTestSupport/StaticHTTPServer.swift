import Foundation

/// A real HTTP server on 127.0.0.1 (Python's http.server on a free port)
/// serving the files of one directory, for tests that fetch sources the way
/// builds do. Stopped with `stop()`, or when it is released. SIGKILL: the
/// child inherits the test runner's blocked signals, SIGTERM among them, so
/// a SIGTERM stays pending and the server outlives the tests.
package final class StaticHTTPServer: @unchecked Sendable {
    package let port: Int
    private let process: Process

    package init(directory: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", """
            import functools, http.server, sys
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
            handler.log_message = lambda *a: None
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """, directory]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            kill(p.processIdentifier, SIGKILL)
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "the test HTTP server did not start"])
        }
        self.port = port
        self.process = p
    }

    /// The URL of `name` in the served directory.
    package func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    package func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
