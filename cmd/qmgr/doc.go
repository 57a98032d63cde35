// Command qmgr is the queue manager binary: every command is in package
// cli, this is only its entry point.
package main
