// Package demo is the demonstrations of qmgr ("qmgr demo" and "qmgr
// cf-demo"): real processes, one of them SIGKILLed part way, and a check
// that every message arrived exactly once.
//
//   - The group demo (group.go, RunGroup): a queue-sharing group of three
//     members started through the group harness (internal/groupproc);
//     producer and consumer applications (GroupWorker) move messages
//     through them in units of work; a member is SIGKILLed with units of
//     work open, a survivor recovers them, and the applications reconnect.
//   - The channel demo (channel.go, --part channel): a group of three sends
//     through one shared channel to a queue manager outside it; the member
//     running the channel is SIGKILLed in the middle of a batch and a
//     survivor takes the channel over.
//   - The request managers' demo (requests.go, --part requests): travel
//     request managers (package request/example/travel) under a group of
//     two run trips of the three recovery modes side by side while a
//     manager, the servers and a member are SIGKILLed; it prints what
//     became of each trip and checks each mode's promise. Its processes
//     run as RequestWorkerName (RequestWorker).
//   - The recovery units' demo (units.go, --part units): a group of two
//     whose members run the example ledger unit (unit/example/ledger) as
//     a service of two replicas (this binary as UnitWorkerName, through
//     UnitWorker); the primary replica is SIGKILLed under load, the
//     secondary promoted and a replacement joins; it checks every
//     transfer confirmed exactly once and in order, both replicas'
//     balances against a reference rebuilt from the confirmations' logged
//     choices, and the checker.
//   - The coupling-facility demo (cf.go, RunCF): no members, one structure;
//     producer and consumer processes (CFWorker), a consumer SIGKILLed in
//     its unit of work and repaired from shared memory alone.
//
// The demos re-execute their own binary: the members as "start" (qmgr's
// own command), the applications as GroupWorkerName and CFWorkerName,
// which package cli dispatches to GroupWorker and CFWorker. Producers keep
// to a rate with one pacer (pace.go).
package demo
