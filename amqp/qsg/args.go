package qsg

import (
	"bytes"
	"fmt"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
)

// queueArgs turns queue.declare's flags and arguments into a queue's AMQP
// attributes; an argument of the wrong type or value is a
// PRECONDITION_FAILED, as in RabbitMQ.
func queueArgs(m *amqp.QueueDeclare) (defs.QueueAMQP, error) {
	a := defs.QueueAMQP{Durable: m.Durable, AutoDelete: m.AutoDelete, MessageTTL: -1, Expires: -1, MaxLength: -1}
	bad := func(arg string, v any) error {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "invalid arg '%s' for queue '%s': %v", arg, m.Queue, v)
	}
	for k, v := range m.Arguments {
		var err error
		switch k {
		case "x-message-ttl":
			a.MessageTTL, err = nonNegative(v)
		case "x-expires":
			a.Expires, err = nonNegative(v)
			if err == nil && a.Expires == 0 {
				err = fmt.Errorf("must be positive")
			}
		case "x-max-length":
			a.MaxLength, err = nonNegative(v)
		case "x-max-priority":
			var p int64
			if p, err = nonNegative(v); err == nil && p > 255 {
				err = fmt.Errorf("at most 255")
			}
			a.MaxPriority = int(p)
		case "x-overflow":
			s, ok := v.(string)
			if !ok || s != "reject-publish" && s != "drop-head" {
				err = fmt.Errorf("reject-publish or drop-head")
			}
			a.Overflow = s
		case "x-dead-letter-exchange":
			s, ok := v.(string)
			if !ok || s != "" && !defs.ValidExchangeName(s) {
				err = fmt.Errorf("an exchange name")
			}
			a.DLX = s
		case "x-dead-letter-routing-key":
			s, ok := v.(string)
			if !ok || len(s) > 255 {
				err = fmt.Errorf("a routing key")
			}
			a.DLRK = &s
		case "x-queue-type":
			if s, ok := v.(string); !ok || s != "classic" {
				err = fmt.Errorf("only classic queues: every queue here is shared by the group")
			}
		case "x-max-length-bytes", "x-single-active-consumer", "x-queue-master-locator", "x-queue-leader-locator":
			if b, isBool := v.(bool); !isBool || b {
				err = fmt.Errorf("not supported by qmgr")
			}
		default:
			// Unknown x- arguments are kept and compared, as RabbitMQ does.
		}
		if err != nil {
			return a, bad(k, err)
		}
	}
	if len(m.Arguments) > 0 {
		enc, err := amqp.AppendTable(nil, m.Arguments)
		if err != nil {
			return a, bad("arguments", err)
		}
		a.Args = enc
	}
	return a, nil
}

// nonNegative reads an integer argument of any AMQP integer type.
func nonNegative(v any) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case int:
		n = int64(x)
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		n = int64(x)
	default:
		return 0, fmt.Errorf("not an integer (%T)", v)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative")
	}
	return n, nil
}

// equivalent checks a declare of an existing queue against it, as
// RabbitMQ does: durable, exclusive, auto-delete and the arguments must
// match. A queue defined without AMQP (DEFINE QLOCAL) counts as durable,
// shared and argument-free.
func equivalent(m *amqp.QueueDeclare, have *defs.QueueAMQP, want defs.QueueAMQP) error {
	h := defs.QueueAMQP{Durable: true}
	if have != nil {
		h = *have
	}
	differ := func(what string) error {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "inequivalent arg '%s' for queue '%s'", what, m.Queue)
	}
	switch {
	case h.Durable != want.Durable:
		return differ("durable")
	case h.AutoDelete != want.AutoDelete:
		return differ("auto_delete")
	case (h.Exclusive != "") != m.Exclusive:
		return differ("exclusive")
	case !bytes.Equal(h.Args, want.Args):
		return differ("arguments")
	}
	return nil
}
