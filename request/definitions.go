package request

import "fmt"

// Definitions is the MQSC that defines the group-wide queues of request
// managers with their default names (run it once, e.g. qmgr mqsc < file):
// the state queue (records, live markers, tombstones; indexed by
// CorrelID), the reply queue of calls to subordinate servers (indexed by
// CorrelID), the cancel queue and the Unexpected Message Queue. None has a
// backout threshold. A manager's input queue is its own: define it
// without BOTHRESH.
func Definitions() string {
	return fmt.Sprintf(`DEFINE QLOCAL(%s) INDXTYPE(CORRELID) MAXDEPTH(100000) DESCR('request managers: state of the requests in flight')
DEFINE QLOCAL(%s) INDXTYPE(CORRELID) MAXDEPTH(100000) DESCR('request managers: replies of subordinate servers')
DEFINE QLOCAL(%s) INDXTYPE(CORRELID) MAXDEPTH(100000) DESCR('request managers: cancels, CorrelID the request id')
DEFINE QLOCAL(%s) MAXDEPTH(100000) DESCR('request managers: Unexpected Message Queue')
`, DefaultStateQueue, DefaultReplyQueue, DefaultCancelQueue, DefaultUnexpectedQueue)
}
