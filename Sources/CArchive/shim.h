#pragma once
#include <archive.h>
#include <archive_entry.h>
// Macros with casts do not import into Swift.
static const unsigned int KILN_AE_IFREG = AE_IFREG;
static const unsigned int KILN_AE_IFDIR = AE_IFDIR;
static const unsigned int KILN_AE_IFLNK = AE_IFLNK;
static const unsigned int KILN_AE_IFCHR = AE_IFCHR;
static const unsigned int KILN_AE_IFBLK = AE_IFBLK;
static const unsigned int KILN_AE_IFIFO = AE_IFIFO;

#include <unistd.h>
#include <sys/syscall.h>
/// Gives the calling thread its own working directory (unshare(CLONE_FS)), so
/// that an extraction thread can chdir into its target without moving any
/// other thread. `unshare` and `CLONE_FS` need _GNU_SOURCE, which Swift's
/// Glibc module does not set; the raw system call does not.
static inline int kiln_unshare_fs(void) {
    return (int)syscall(SYS_unshare, 0x00000200 /* CLONE_FS */);
}

/// syncfs(2): flushes the filesystem that holds `fd`. Also behind _GNU_SOURCE.
static inline int kiln_syncfs(int fd) {
    return (int)syscall(SYS_syncfs, fd);
}
