package amqp

import "fmt"

// Exception is an AMQP error: a channel exception closes the channel
// (channel.close), a connection exception the connection
// (connection.close). ClassID and MethodID name the method that failed (0
// when none did).
type Exception struct {
	Code              uint16
	Text              string
	ClassID, MethodID uint16
	Connection        bool
}

func (e *Exception) Error() string {
	kind := "channel"
	if e.Connection {
		kind = "connection"
	}
	return fmt.Sprintf("amqp: %s exception %d %s", kind, e.Code, e.Text)
}

// connectionClose is the connection.close that reports e.
func (e *Exception) connectionClose() *ConnectionClose {
	return &ConnectionClose{ReplyCode: e.Code, ReplyText: e.Text, ClassID: e.ClassID, MethodID: e.MethodID}
}

// ChannelException returns a channel exception for method m (nil: none).
func ChannelException(code uint16, m Method, format string, args ...any) *Exception {
	e := &Exception{Code: code, Text: codeName(code) + " - " + fmt.Sprintf(format, args...)}
	if m != nil {
		e.ClassID, e.MethodID = m.ClassMethod()
	}
	return e
}

// ConnectionException returns a connection exception for method m (nil:
// none).
func ConnectionException(code uint16, m Method, format string, args ...any) *Exception {
	e := ChannelException(code, m, format, args...)
	e.Connection = true
	return e
}

// codeName is the reply code's name as RabbitMQ writes it at the start of
// a reply text (clients show it to users).
func codeName(code uint16) string {
	switch code {
	case ReplyContentTooLarge:
		return "CONTENT_TOO_LARGE"
	case ReplyNoRoute:
		return "NO_ROUTE"
	case ReplyNoConsumers:
		return "NO_CONSUMERS"
	case ReplyConnectionForced:
		return "CONNECTION_FORCED"
	case ReplyInvalidPath:
		return "INVALID_PATH"
	case ReplyAccessRefused:
		return "ACCESS_REFUSED"
	case ReplyNotFound:
		return "NOT_FOUND"
	case ReplyResourceLocked:
		return "RESOURCE_LOCKED"
	case ReplyPreconditionFailed:
		return "PRECONDITION_FAILED"
	case ReplyFrameError:
		return "FRAME_ERROR"
	case ReplySyntaxError:
		return "SYNTAX_ERROR"
	case ReplyCommandInvalid:
		return "COMMAND_INVALID"
	case ReplyChannelError:
		return "CHANNEL_ERROR"
	case ReplyUnexpectedFrame:
		return "UNEXPECTED_FRAME"
	case ReplyResourceError:
		return "RESOURCE_ERROR"
	case ReplyNotAllowed:
		return "NOT_ALLOWED"
	case ReplyNotImplemented:
		return "NOT_IMPLEMENTED"
	case ReplyInternalError:
		return "INTERNAL_ERROR"
	}
	return fmt.Sprintf("CODE_%d", code)
}
