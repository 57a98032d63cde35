package amqp

import "errors"

// Sentinel errors of the codec. A decoder of bytes from the network
// returns them wrapped with what it was reading; it never panics.
var (
	// ErrProtocolHeader: the client did not open with AMQP 0-9-1's header.
	ErrProtocolHeader = errors.New("amqp: not an AMQP 0-9-1 protocol header")
	// ErrFrame: a frame of an unknown type, over frame_max or without its
	// end octet (reply code 501, the connection closes).
	ErrFrame = errors.New("amqp: frame error")
	// ErrSyntax: a method or content header that does not decode (reply
	// code 502).
	ErrSyntax = errors.New("amqp: syntax error")
	// ErrUnknownMethod: a class and method id no 0-9-1 method has (reply
	// code 540, not implemented).
	ErrUnknownMethod = errors.New("amqp: unknown method")
)

// Reply codes of connection.close and channel.close (AMQP 0-9-1, section
// 1.9 of the specification, with RabbitMQ's use of them).
const (
	ReplySuccess            = 200
	ReplyContentTooLarge    = 311 // channel: the content cannot be delivered now
	ReplyNoRoute            = 312 // basic.return of a mandatory publish
	ReplyNoConsumers        = 313 // basic.return of an immediate publish
	ReplyConnectionForced   = 320 // connection: an operator or shutdown closed it
	ReplyInvalidPath        = 402 // connection: unknown virtual host
	ReplyAccessRefused      = 403 // channel or connection: no permission
	ReplyNotFound           = 404 // channel: no such queue or exchange
	ReplyResourceLocked     = 405 // channel: exclusive to another connection
	ReplyPreconditionFailed = 406 // channel: arguments that do not match
	ReplyFrameError         = 501 // connection: malformed frame
	ReplySyntaxError        = 502 // connection: malformed method
	ReplyCommandInvalid     = 503 // connection: method not allowed now
	ReplyChannelError       = 504 // connection: channel not open, or reopened
	ReplyUnexpectedFrame    = 505 // connection: frame out of order
	ReplyResourceError      = 506 // connection: out of a resource
	ReplyNotAllowed         = 530 // connection: vhost, or a method not permitted
	ReplyNotImplemented     = 540 // connection
	ReplyInternalError      = 541 // connection
)
