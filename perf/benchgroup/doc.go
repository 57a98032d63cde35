// Package benchgroup runs queue-sharing groups whose members are processes
// for the benchmark programs in perf: the program re-executes itself as
// qmgr (its main hands "start", "chinit" and "amqp-listener" to cli.Main,
// RunChild), and
// this package starts, kills and restarts members through the group
// harness (internal/groupproc), sends commands and prints figures.
package benchgroup
