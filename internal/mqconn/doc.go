// Package mqconn gives the queue manager's own components the parts of an
// mq.Conn that an application must not touch: the group handle, the
// connection's owner in the admin structure and its definitions
// repository. The channel initiator updates the shared channel status
// table and group counters with them and reads channel definitions; the
// chaos harness reads queue depths.
//
// These were exported methods of mq.Conn; as an internal package they are
// out of reach of any program outside this module, so mq's public API is
// only what an application may do. Package mq registers the accessor at
// init (Register), and a caller asks for a connection's parts with Of:
//
//	p := mqconn.Of(conn) // conn is an *mq.Conn
//	total, err := p.Group.AddCounter(p.Admin, c, 1)
//
// The parts are the connection's own, not copies: like the connection,
// the admin owner is not safe for concurrent use, and none of them may be
// used after the connection is disconnected.
package mqconn
