// Package group is the queue-sharing group's shared state in the admin
// structure (shm.AdminStructure): the peer table of members, leases, and
// counters such as the definitions version. It also locates a group's
// files (Config) and attaches its structures.
//
// The admin structure is a lockfree structure whose owner slots are the
// group's connection slots: every connection (an application's, or a
// member's own) registers an owner there with a label naming its member
// and the member's incarnation (ConnLabel), and registers the same slot in each application structure it
// uses, so a connection has one OwnerTag everywhere.
//
// Everything else lives in the admin structure's status slots, changed only
// by whole-record compare-and-swap:
//
//	slots  0..31   peer records, one per member (PeerSlots)
//	slots 32..47   leases (LeaseExpiry, LeaseBackup, ...)
//	slots 48..63   counters (CounterDefs, CounterLRSN, ...)
//	slots 64..     free for later layers (channel status)
//
// # Peer record (256 bytes, little-endian)
//
//	  0  48 name, NUL padded
//	 48   1 state (PeerState)
//	 49   7 zero
//	 56   8 pid
//	 64   8 process start time (procid)
//	 72   8 incarnation (counts starts of this member name)
//	 80   8 heartbeat, Unix ns (the member stores it every HeartbeatInterval)
//	 88   8 started, Unix ns
//	 96   8 recoverer pid (state recovering)
//	104   8 recoverer start time
//	112   4 local port          116 4 generic port
//	120   8 pid namespace of the member's process (inode of
//	        /proc/self/ns/pid; 0 from older members)
//	128 128 zero
//
// # Lease record
//
//	 0   8 holder peer slot + 1 (0: free)
//	 8   8 holder pid      16 8 holder start time
//	24   8 expiry, Unix ns (the holder renews it)
//	32   8 generation (incremented on every change of holder)
//
// # Counter record
//
//	0   8 value
package group
