// Package cli is the qmgr command line: it parses a command and its flags
// into a configuration and runs it. cmd/qmgr is only a call to Main.
//
// One table (commands, in cli.go) holds every command: its name, its line
// in the usage text and the function that runs it, so the help and the
// dispatch cannot disagree. The user's commands:
//
//	qmgr start    run a member (queue manager) of a group in the foreground;
//	              with --http ADDR it serves health, metrics, the JSON API and
//	              the web console (package httpd) from its own process; under
//	              systemd (Type=notify) it says READY=1 once active (start.go,
//	              internal/sdnotify; the unit: dist/systemd/qmgr@.service)
//	qmgr stop     stop a member in order and wait until it has (stop.go)
//	qmgr status   the group, its members and their recovery logs, structures,
//	              queues and refused inbound connections, as aligned text or
//	              --json (package status, which a member's /api/status
//	              serves too); exit status 1 if no member is active (status.go)
//	qmgr mqsc     run MQSC commands (-c or standard input) on a member (mqsc.go)
//	qmgr put      put messages: standard input's lines, or --count generated ones (putget.go)
//	qmgr get      get or browse messages, one body per line (putget.go)
//	qmgr check    run the structure checker on every structure of the group;
//	              exit status 1 on a broken invariant (check.go)
//	qmgr version  the version, Go version and VCS revision (cli.go, internal/buildinfo)
//	qmgr demo     the group demo, then the shared channel demo (package cli/demo)
//	qmgr cf-demo  the coupling facility alone (package cli/demo)
//
// Worker commands have no line in the table and are left out of the help:
// the binary runs them as its own children. "chinit" is a member's channel
// initiator (chinit.go; the member starts it, qm.Config.ChinitCommand);
// "amqp-listener" is a member's AMQP listener (amqplisten.go: the broker
// on the group, amqp/qsg, served by amqp/listen; the member starts it
// when `qmgr start` has --amqp-port or --amqp-generic-port,
// qm.Config.AMQPCommand, with the --amqp-* flags of start without their
// prefix); "demo-worker" and "group-demo-worker" are the demos' applications.
//
// Long operations (put and get --count, check, and RECOVER/BACKUP CFSTRUCT
// through mqsc, whose progress the member sends over the command socket:
// qm.CommandProgress) show their progress on standard error through
// internal/progress; commands get standard error for it.
//
// Every group command takes the group's flags, --group, --data, --cf-dir,
// --app-size and --app-element-size (group.Config.RegisterFlags, flags.go);
// group.Config.Args writes them back for a child process.
package cli
