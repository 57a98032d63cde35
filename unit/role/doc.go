// Package role holds the records through which the replicas of a
// recovery unit and the members supervising them agree on roles
// (docs/design/recovery-units.md sections 3.1, 3.2 and 6): the role
// record (status slot base of the unit's CF structure) and one progress
// record per position (slot base+1+k), their byte layouts (tables beside
// the offset constants in layout.go), the role transitions as a pure
// function Next(record, event), the invariants every record must keep
// (Role.Check), and the placement of a vacant position on a member
// (Place).
//
// The records live in lockfree status slots. A role change is a
// compare-and-swap of the whole record: the caller reads the record,
// computes Next from what it read, and swaps with what it read as the
// before-image; a loser reads again and recomputes, and usually finds
// that the event no longer applies (ErrStale: the entry it was about has
// changed), which is how two recoverers of one death cannot both promote.
// A progress record has one writer, the replica in its position.
//
// Decoders take bytes other processes wrote in shared memory: they check
// every field and return errors wrapping the package's sentinels, never
// panic (fuzzed). The package does no I/O of its own: Read takes the
// slots through the caller's StatusReader.
package role
