// Package ownedfs creates and opens the directories and files of a
// queue-sharing group so that only the group's owner and the members of
// its Unix group can reach them, and refuses what anyone else planted.
//
// # Threat
//
// The processes of the group's owner and of the members of its Unix group
// are trusted. Any other local user may create the group's predictable
// directories (/dev/shm/qmgr-<group>, the data, log, backup and archive
// directories) or files in them before qmgr starts, or plant symbolic
// links, to have the group map structures the attacker reads and writes,
// or to rename the group's files away.
//
// # Rules
//
//   - A directory qmgr creates is made with mkdir(2) (exclusively) and
//     then given mode DirMode (0770) with fchmod, whatever the umask; a
//     file is made with O_CREAT|O_EXCL|O_NOFOLLOW and given FileMode (0660)
//     the same way. Missing parents are created the same way.
//   - A directory or file that exists is opened with O_NOFOLLOW (a
//     directory also with O_DIRECTORY), and checked with fstat(2) on what
//     was opened, not on the name: it must be of the right type, not a
//     symbolic link, owned by the effective user or belong to the
//     effective group (only a member of that group can have made it so),
//     and give no permission to others.
//   - One of the effective user's own that others may read but not write
//     (as versions before this package made log segments, backups and
//     their directories) is tightened (the bits for others removed with
//     fchmod) instead of refused: nobody else can have changed it.
//     Anything else fails with an *Error naming the path, its owner (uid,
//     and the user name when it is known), its group and its mode, and
//     wrapping one of the sentinels ErrSymlink, ErrNotOwned,
//     ErrOpenToOthers or ErrWrongType.
//   - Verify checks an open file the same way without changing it, for
//     the periodic checks of what a process keeps open (the mapped
//     structure files).
//
// Only the last element of a path is checked: the directories above the
// group's own (/dev/shm, a home directory) are the system's and the
// operator's. Members and applications of a group share files by running
// as its owner or with its Unix group as their effective group (the
// primary group, or through sg(1) or newgrp(1)).
package ownedfs
