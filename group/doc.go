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
// # Records
//
// The peer, lease and counter records (256 bytes each, little-endian) are
// tables directly above their offset constants in records.go
// (TestLayoutTables checks them against the constants).
package group
