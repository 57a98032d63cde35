// Package channel will hold shared channels: channel definitions, the
// channel initiator, sender and receiver agents, the wire protocol and the
// shared sync queue (seeds 000 and 001). It is empty until that issue; the
// directory exists because the top-level layout is fixed.
package channel
