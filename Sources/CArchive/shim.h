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
