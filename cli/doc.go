// Package cli is the qmgr command line: it parses a command and its flags
// into a configuration and runs it. cmd/qmgr is only a call to Main.
//
// Commands so far:
//
//	qmgr demo    the coupling facility at work: producer and consumer
//	             processes, one SIGKILLed mid unit of work and repaired
//	qmgr check   run the structure checker on every structure of a CF
//	             directory; exit status 1 on any broken invariant
package cli
