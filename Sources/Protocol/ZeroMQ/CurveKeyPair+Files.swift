import CZeroMQ
import Foundation

/// Key files: `NAME.key` holds the secret key (mode 0600), `NAME.pub` the
/// public key, each as one Z85 line. The public key is derived again from the
/// secret on load, so a `.key` file is all an agent or scheduler needs.
extension CurveKeyPair {
    /// The pair for a Z85 secret key.
    package init(secretKey: String) throws(ZMQError) {
        guard Self.isZ85Key(secretKey) else { throw ZMQError(operation: "zmq_curve_public (not a Z85 key)", code: EINVAL) }
        var pub = [CChar](repeating: 0, count: 41)
        try check(zmq_curve_public(&pub, secretKey), "zmq_curve_public")
        self.init(publicKey: String(cString: pub), secretKey: secretKey)
    }

    /// Writes `PREFIX.key` (0600) and `PREFIX.pub`; refuses to overwrite either.
    /// Returns their paths.
    @discardableResult
    package func write(prefix: String) throws(KeyFileError) -> (secret: String, public: String) {
        let secretPath = prefix + ".key", publicPath = prefix + ".pub"
        for path in [secretPath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw .exists(path: path)
        }
        try Self.create(secretPath, secretKey + "\n", mode: 0o600)
        try Self.create(publicPath, publicKey + "\n", mode: 0o644)
        return (secretPath, publicPath)
    }

    /// Loads a pair from a `.key` file, which must not be readable by others.
    package static func load(secretKeyFile path: String) throws(KeyFileError) -> CurveKeyPair {
        var info = stat()
        if stat(path, &info) == -1 { throw .unreadable(path: path, errno: errno) }
        let mode = UInt32(info.st_mode) & 0o777
        if mode & 0o077 != 0 { throw .tooOpen(path: path, mode: mode) }
        let secret = try readKey(path)
        do {
            return try CurveKeyPair(secretKey: secret)
        } catch {
            throw .malformed(path: path, reason: "\(error)")
        }
    }

    /// Loads the Z85 public key from a `.pub` file.
    package static func loadPublicKey(_ path: String) throws(KeyFileError) -> String {
        try readKey(path)
    }

    /// 40 characters of the Z85 alphabet that decode to 32 bytes.
    package static func isZ85Key(_ text: String) -> Bool {
        guard text.utf8.count == 40 else { return false }
        var bytes = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&bytes, text) != nil
    }

    private static func readKey(_ path: String) throws(KeyFileError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, errno: FileManager.default.fileExists(atPath: path) ? EACCES : ENOENT)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .malformed(path: path, reason: "not UTF-8 text")
        }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard isZ85Key(key) else {
            throw .malformed(path: path, reason: "\(key.count) characters that are not a Z85 key")
        }
        return key
    }

    private static func create(_ path: String, _ contents: String, mode: mode_t) throws(KeyFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd == -1 { throw errno == EEXIST ? .exists(path: path) : .unwritable(path: path, errno: errno) }
        defer { close(fd) }
        // The umask may have narrowed the mode; the secret must be exactly 0600.
        _ = fchmod(fd, mode)
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if written != bytes.count || fsync(fd) == -1 { throw .unwritable(path: path, errno: errno) }
    }
}
