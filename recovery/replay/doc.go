// Package replay rebuilds the persistent messages of an application
// structure from the members' recovery logs.
//
// The logs of all members are merged in LRSN order (each log's LRSNs only
// grow, so a k-way merge suffices). Puts and gets of a unit of work wait
// for its commit record and are applied then, in the order they were
// logged; a put or get flagged committed applies at once; a unit of work
// that backs out or never ends is dropped, and so is one whose key the
// caller names as aborted (Options.Aborted: backed out after its commit
// record may have reached the log), whatever its commit record says; a put
// or get flagged committed that names an aborted key as its unit of work
// (one outside syncpoint whose record was not known durable) is dropped
// too.
// Applying is idempotent: a put of a key already present, or a get of a
// key absent, changes nothing, so replay may start anywhere at or before
// the point it must cover (a fuzzy backup's start).
//
// The result is the set of messages that survive, in the order the caller
// puts them back: the seed's messages, and the messages the seed kept a
// place for (puts under syncpoint a backup found uncommitted, package
// backup), by their place in the seed; then the others in the order they
// became visible (their commit's LRSN and their place in the unit of
// work). A place keeps a producer's order: its message stood before the
// seed messages the scan met after it.
package replay
