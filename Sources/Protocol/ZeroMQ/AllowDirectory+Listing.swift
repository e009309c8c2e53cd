import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension AllowDirectory {
    /// What the directory looks like without opening a key file: the
    /// directory and its three folders, and every `*.pub` in them, each with
    /// its name, inode, mode, size, mtime and ctime, from one `fstatat` per
    /// entry and no Swift string per entry. Two equal listings mean `load`
    /// would read the same keys, so a watcher reads and parses the keys only
    /// when the listing changed (docs/benchmarks.md has what that saves).
    package struct Listing: Equatable, Sendable {
        /// Per directory and entry, in the order met: inode, mode, size,
        /// mtime and ctime (ns); or one negative errno where it could not be
        /// opened or `stat`ed.
        var numbers: [Int64] = []
        /// The entries' names, each followed by a NUL, in the same order.
        var names: [UInt8] = []
        /// Whether every time in it is at least `settleNS` older than the
        /// moment it was taken. A file rewritten within one tick of the
        /// file system's clock (same size, same times) looks unchanged; a
        /// listing that has not settled is therefore never trusted to stand
        /// for the keys, and the next look reads them again.
        package var settled = false

        static let settleNS: Int64 = 1_000_000_000

        /// Whether the keys read when `read` was taken are still what `load`
        /// would return: nothing changed since, and neither listing is too
        /// fresh to tell.
        package func unchanged(since read: Listing?) -> Bool {
            settled && self == read
        }
    }

    /// The directory's listing now (`nowNS`: the wall clock, injected by
    /// tests). It never throws: what cannot be read is recorded by its
    /// errno, and `load` says why.
    package func listing(nowNS: Int64 = AllowDirectory.realtimeNS()) -> Listing {
        var listing = Listing()
        var newest: Int64 = 0
        func record(_ info: stat) {
            let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            let ctime = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
            newest = max(newest, mtime, ctime)
            listing.numbers.append(Int64(bitPattern: UInt64(info.st_ino)))
            listing.numbers.append(Int64(info.st_mode))
            listing.numbers.append(Int64(info.st_size))
            listing.numbers.append(mtime)
            listing.numbers.append(ctime)
        }
        /// Records a directory and its `*.pub` and `*.token` entries; false when it is not one.
        func folder(_ path: String) -> Bool {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                listing.numbers.append(-Int64(errno))
                return false
            }
            var info = stat()
            guard fstat(fd, &info) == 0, let dir = fdopendir(fd) else {
                listing.numbers.append(-Int64(errno))
                close(fd)
                return false
            }
            defer { closedir(dir) }
            record(info)
            let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            var seen = 0
            while let entry = readdir(dir), seen <= Self.maxKeys * 4 {
                seen += 1
                let name = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
                let length = strlen(name)
                let key = length > 4 && memcmp(name + length - 4, ".pub", 4) == 0
                let token = length > 6 && memcmp(name + length - 6, ".token", 6) == 0
                guard key || token else { continue }
                listing.names.append(contentsOf: UnsafeRawBufferPointer(start: name, count: length + 1))
                var entryInfo = stat()
                if fstatat(dirfd(dir), name, &entryInfo, AT_SYMLINK_NOFOLLOW) == 0 {
                    record(entryInfo)
                } else {
                    listing.numbers.append(-Int64(errno))
                }
            }
            return true
        }
        guard folder(path) else { return listing }
        for role in KeyRole.allCases { _ = folder(path + "/" + role.folder) }
        listing.settled = newest <= nowNS - Listing.settleNS
        return listing
    }

    /// The wall clock in ns since the epoch (the clock of file times).
    package static func realtimeNS() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
