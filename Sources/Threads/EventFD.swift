import CEventFD

#if canImport(Glibc)
import Glibc
#endif

/// A Linux eventfd that wakes a socket thread out of `zmq_poll`. Any thread
/// may `signal`; the owning thread polls `fd` and `drain`s it. The descriptor
/// is closed when the last reference goes, so a late `signal` never writes
/// to a reused descriptor.
package final class EventFD: Sendable {
    package let fd: Int32

    /// Fails with the errno of `eventfd(2)` (EMFILE, ENOMEM, …).
    package init() throws(EventFDError) {
        let fd = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        if fd == -1 { throw EventFDError(code: errno) }
        self.fd = fd
    }

    package func signal() {
        var one: UInt64 = 1
        _ = write(fd, &one, MemoryLayout<UInt64>.size)
    }

    package func drain() {
        var count: UInt64 = 0
        _ = read(fd, &count, MemoryLayout<UInt64>.size)
    }

    deinit { close(fd) }
}

/// `eventfd(2)` failed.
package struct EventFDError: Error, Sendable {
    /// The errno.
    package let code: Int32
}
