// Package amqp is AMQP 0-9-1, the protocol of RabbitMQ's clients, for
// qmgr's members.
//
// # Codec
//
// Frames (frame.go: type, channel, size, payload, end octet 0xCE) are read
// by a FrameReader that refuses a frame over the negotiated frame_max
// (FrameMinSize, 4096 bytes, until tuning), of an unknown type or without
// its end octet (ErrFrame: reply code 501, the connection closes).
//
// Methods are generated from one table, internal/specgen's Spec (a line
// per method: name, class and method ids, whether content follows, the
// arguments and their types), into methods_gen.go: a struct per method
// with a field per argument, and newMethod, which DecodeMethod uses to
// find the struct for a class and method id. `go generate ./amqp`
// rewrites the file; TestMethodsGenerated fails when it and the table
// differ. Consecutive bit arguments share an octet, the first in its
// lowest bit.
//
// Field tables (table.go) use the field types of RabbitMQ and its clients
// (the 0-9-1 errata), listed with their Go types at Table. Decoding
// bounds nesting at 32 levels. Content headers (props.go) carry the
// basic class's 14 properties; Properties.Flags keeps which were present,
// so a property sent with its zero value (priority 0) is sent on as it
// came.
//
// # Connections
//
// Serve runs one client connection (conn.go, dispatch.go, channel.go):
// the handshake (protocol header; connection.start offering PLAIN and
// AMQPLAIN; the credentials to Broker.Login; tune, where the client may
// lower frame_max and channel_max and chooses the heartbeat; open, whose
// vhost the Broker's Session accepts or refuses), then frames. Channel
// methods go to the channel's ChannelHandler one at a time, in order, from
// the connection's reader goroutine; a publish's content (header and body
// frames) is assembled first, refused with 406 over Config.MaxMessageSize.
// A handler's *Exception closes its channel (channel.close, the number
// freed at the client's close-ok, everything else on the channel discarded
// meanwhile) or the connection; the connection's own errors use the
// specification's codes: 501 for a bad frame, 502 for a malformed method,
// 503 for a method not allowed now, 504 for a channel not open or opened
// twice, 505 for a frame out of order, 540 for an unknown method. A
// handshake not finished within Config.HandshakeTimeout, and a client
// silent for two heartbeat intervals, are disconnected. Writers (the
// reader's replies, consumers' deliveries through Channel.Send and
// SendContent) share one buffered writer; the last of a burst flushes.
//
// # Routing
//
// TopicMatch and HeadersMatch (route.go) are the topic and headers
// exchanges' matching rules as RabbitMQ applies them: '*' one word, '#'
// zero or more (a dynamic program, so a binding key of many '#' is no
// slower than another), and x-match all/any with void arguments matching
// presence and other values matching type and value.
//
// Every decoder of bytes from the network (ReadFrame, DecodeMethod,
// DecodeContentHeader) returns ErrFrame, ErrSyntax or ErrUnknownMethod,
// wrapped with what and where, and never panics; each has a fuzz target
// (fuzz_test.go) whose seeds are every method of the table.
package amqp
