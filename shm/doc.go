// Package shm creates, attaches, validates and detaches the coupling-facility
// (CF) structure files that every process of a queue-sharing group maps with
// MAP_SHARED. It is the only package that turns mapped bytes into typed views
// (pointers to words for sync/atomic, byte slices), and the only one that
// uses package unsafe; the structures inside a mapping are built by package
// lockfree on top of the Mem type defined here.
//
// # Files
//
// A group keeps its structures in one directory, by default
// /dev/shm/qmgr-<group>/ (DefaultDir). Each structure is one file named after
// the structure (for example ADMIN or APPL1), created with mode 0660 in a
// directory of mode 0770 whatever the umask, so only the owning user and
// group may map it.
//
// Nobody else may have made them (package internal/ownedfs): Create (what
// members call) makes the directory or checks the existing one, and
// Attach opens a structure file with O_NOFOLLOW and checks it with fstat.
// A directory or file that is a symbolic link, or is neither the user's
// nor the effective group's, or gives any permission to others, is
// refused with ErrPermission, the error naming the path, the owner and
// the mode: another local user who created /dev/shm/qmgr-<group> first,
// or planted a structure or a link, gets nothing mapped. Check, which the
// members run on every structure they map several times a second, also
// fails a structure whose file changed owner or mode (ErrPermission) or
// whose name no longer names the mapped file: renamed away, or replaced
// by another file (ErrNotFound); either is a failed structure, recovered
// as one whose file was removed.
//
// Creation is atomic: the creator writes and initialises a temporary file
// (".<name>.<pid>.<random>.tmp") in the same directory and then link(2)s it
// to its final name. link fails with EEXIST when another process won the
// race, in which case the loser discards its file and attaches the winner's.
// The final name therefore only ever names a complete, initialised
// structure. Recreate, for a structure with a single owner (a member's
// log buffer), renames such a file over the existing name instead, so a
// damaged file is replaced in one step. A creator killed before the link leaves a temporary file that
// the next Create in that directory removes once its pid is gone.
//
// Pages are allocated with fallocate(2) at creation (a full /dev/shm is
// reported as ErrNoSpace instead of a SIGBUS later) and every attach
// prefaults its page tables with madvise(MADV_POPULATE_WRITE), so the data
// path takes no page faults. MADV_POPULATE_WRITE also reports a file that
// became shorter than its header says as an error instead of a fault.
//
// # Header
//
// Page 0 (4096 bytes, little-endian) is the header: magic, the layout
// version of everything after it, kind, size, creation time, the data
// area's offset, name and a checksum; its table is directly above its
// offset constants in structure.go (TestLayoutTables checks it).
//
// The data area runs from the data offset to size; its layout is owned by the caller
// (package lockfree) and covered by the version field.
//
// # Errors
//
// Attach refuses a file with a wrong magic (ErrBadMagic), a bad header
// checksum or name (ErrCorrupt), another layout version (ErrVersion), a file
// shorter than its header says or than a header (ErrTruncated), a file the
// process may not open or that another user planted (ErrPermission; the
// *ownedfs.Error behind it is in the chain too) and a missing file
// (ErrNotFound). Each
// comes wrapped in an *Error that names the file and says what to do. A
// memory fault while touching a mapping becomes ErrFault through Guard and
// CatchFault instead of killing the process.
package shm
