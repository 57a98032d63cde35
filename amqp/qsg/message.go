package qsg

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
)

// A message published through AMQP keeps what AMQP says of it in its mq
// properties (mq.Message.Properties), so that it comes out unchanged
// through mq, qmgr get and a channel to another group:
//
//	offset  size  constant        field
//	     0     4  propOffMagic    "AMQ\x01" (propMagic)
//	     4     1  propOffExLen    length of the exchange name published to
//	     5     *  propOffExchange the exchange name, then the routing key
//	                               (1-byte length, bytes), then the content
//	                               properties as amqp.AppendProperties
//	                               writes them
const (
	propOffMagic    = 0
	propOffExLen    = 4
	propOffExchange = 5
)

// propMagic marks mq properties written by this package.
const propMagic = "AMQ\x01"

// ErrProperties: mq properties that say they are AMQP's but do not decode.
var ErrProperties = errors.New("qsg: malformed AMQP message properties")

// appendStored appends the stored form of a publish's exchange, routing
// key and properties.
func appendStored(b []byte, exchange, key string, props *amqp.Properties) ([]byte, error) {
	b = append(b, propMagic...)
	b = append(b, byte(len(exchange)))
	b = append(b, exchange...)
	b = append(b, byte(len(key)))
	b = append(b, key...)
	return amqp.AppendProperties(b, props)
}

// stored is a message's AMQP side as stored: where it was published and
// its properties, still encoded.
type stored struct {
	exchange, key string
	props         []byte // encoded as amqp.AppendProperties writes them
}

// parseStored splits mq properties written by appendStored; ok is false
// for properties that are not AMQP's (a message an mq application put).
func parseStored(p []byte) (s stored, ok bool, err error) {
	if len(p) < propOffExchange || string(p[propOffMagic:propOffExLen]) != propMagic {
		return s, false, nil
	}
	p = p[propOffExLen:]
	str := func() (string, bool) {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return "", false
		}
		v := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		return v, true
	}
	var ok1, ok2 bool
	s.exchange, ok1 = str()
	s.key, ok2 = str()
	if !ok1 || !ok2 {
		return s, true, fmt.Errorf("%w: exchange and routing key", ErrProperties)
	}
	if _, rest, err := amqp.DecodeProperties(p); err != nil || len(rest) != 0 {
		return s, true, fmt.Errorf("%w: content properties: %v", ErrProperties, err)
	}
	s.props = p
	return s, true, nil
}

// mqProperties are the AMQP properties of a message an mq application put
// (no AMQP properties of its own): its message and correlation ids in hex,
// its reply-to queue, its priority, persistence and put time.
func mqProperties(v *mq.View) []byte {
	p := amqp.Properties{MessageID: hex.EncodeToString(v.MsgID[:]), Priority: uint8(v.Priority), DeliveryMode: 1}
	if v.CorrelID != ([24]byte{}) {
		p.CorrelationID = hex.EncodeToString(v.CorrelID[:])
	}
	if v.Persistence == mq.Persistent {
		p.DeliveryMode = 2
	}
	if v.Format == "MQSTR" {
		p.ContentType = "text/plain"
	}
	b, _ := amqp.AppendProperties(nil, &p) // no table: cannot fail
	return b
}

// publishing is a publish turned into an mq message for one queue at a
// time (put changes it: a fresh message id per queue).
type publishing struct {
	exchange, key string
	props         amqp.Properties
	stored        []byte // the properties to store (appendStored)
	body          []byte
	ttl           int64 // the message's expiration in ms; -1 none
}

// newPublishing checks a publish's properties and builds their stored
// form into p, reusing p's storage (a channel publishes one at a time, and
// a put copies what it puts). user is the login, which user-id must equal
// when present.
func newPublishing(p *publishing, pub *amqp.BasicPublish, c *amqp.Content, user string) error {
	*p = publishing{exchange: pub.Exchange, key: pub.RoutingKey, props: c.Header.Props, body: c.Body, ttl: -1, stored: p.stored[:0]}
	if u := p.props.UserID; u != "" && u != user {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, pub, "user_id property set to '%s' but authenticated user was '%s'", u, user)
	}
	if e := p.props.Expiration; e != "" {
		ms, err := strconv.ParseInt(e, 10, 64)
		if err != nil || ms < 0 {
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, pub, "invalid expiration '%s'", e)
		}
		p.ttl = ms
	}
	var err error
	if p.stored, err = appendStored(p.stored, p.exchange, p.key, &p.props); err != nil {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, pub, "%v", err)
	}
	return nil
}

// message is the publishing as put to queue q.
func (p *publishing) message(q *defs.Queue, now time.Time) mq.Message {
	m := mq.Message{Properties: p.stored, Body: p.body, Persistence: mq.NotPersistent, Priority: 0}
	a := q.AMQP
	if p.props.DeliveryMode == 2 && (a == nil || a.Durable) {
		m.Persistence = mq.Persistent
	}
	if a != nil && a.MaxPriority > 0 {
		m.Priority = mqPriority(int(p.props.Priority), a.MaxPriority)
	}
	ttl := p.ttl
	if a != nil && a.MessageTTL >= 0 && (ttl < 0 || a.MessageTTL < ttl) {
		ttl = a.MessageTTL
	}
	if ttl >= 0 {
		m.Expiry = now.Add(time.Duration(ttl) * time.Millisecond)
		if ttl == 0 {
			m.Expiry = now.Add(time.Nanosecond)
		}
	}
	return m
}

// mqPriority maps an AMQP priority (0..255, capped at the queue's
// x-max-priority) onto mq's ten.
func mqPriority(p, max int) int {
	if p > max {
		p = max
	}
	if max <= 9 {
		return p
	}
	return p * 9 / max
}

// Stored is what AMQP says of a message, as the broker stores it in the
// message's mq properties.
type Stored struct {
	Exchange, RoutingKey string
	Properties           amqp.Properties
}

// DecodeStored decodes a message's mq properties written by this package
// (qmgr get --props shows them); ok is false when they are not AMQP's.
func DecodeStored(p []byte) (s Stored, ok bool, err error) {
	st, ok, err := parseStored(p)
	if !ok || err != nil {
		return s, ok, err
	}
	props, _, err := amqp.DecodeProperties(st.props)
	return Stored{Exchange: st.exchange, RoutingKey: st.key, Properties: props}, true, err
}
