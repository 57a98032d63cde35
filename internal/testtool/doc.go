// Package testtool finds the programs from outside Go that some tests
// need: a browser for the web console's tests, Python's pika and Node's
// amqplib for the AMQP interoperability tests.
//
// The README's test command must pass on a machine with only Go
// installed, so a test whose tool is missing skips, saying what to
// install. CI must not skip them: .ci/run installs the tools and sets
// EnvRequire, under which a missing tool fails the test instead.
package testtool
