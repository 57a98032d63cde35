package defs

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Object types of remote messaging.
const (
	TypeQRemote Type = "QREMOTE"
	TypeChannel Type = "CHANNEL"
)

// QRemote is a remote queue definition: applications put to it by name and
// the message goes to queue RName on queue manager RQMName, through the
// transmission queue XmitQ (by default the local queue named RQMName).
type QRemote struct {
	Name    string    `json:"QUEUE"`
	RName   string    `json:"RNAME"`
	RQMName string    `json:"RQMNAME"`
	XmitQ   string    `json:"XMITQ"` // empty: the queue named RQMNAME
	Descr   string    `json:"DESCR"`
	Created time.Time `json:"-"`
	Altered time.Time `json:"-"`
}

// Validate checks a remote queue definition.
func (q QRemote) Validate() error {
	switch {
	case !ValidName(q.Name):
		return fmt.Errorf("%w: queue name %q", ErrBadName, q.Name)
	case !ValidName(q.RName):
		return fmt.Errorf("%w: RNAME(%s) is required and must be a queue name", ErrBadValue, q.RName)
	case !ValidName(q.RQMName):
		return fmt.Errorf("%w: RQMNAME(%s) is required and must be a queue manager name", ErrBadValue, q.RQMName)
	case q.XmitQ != "" && !ValidName(q.XmitQ):
		return fmt.Errorf("%w: XMITQ(%s)", ErrBadName, q.XmitQ)
	case len(q.Descr) > 64:
		return fmt.Errorf("%w: DESCR longer than 64 characters", ErrBadValue)
	}
	return nil
}

// TransmissionQueue is the queue messages for this remote queue go to.
func (q QRemote) TransmissionQueue() string {
	if q.XmitQ != "" {
		return q.XmitQ
	}
	return q.RQMName
}

// Channel types.
const (
	ChlSender   = "SDR"
	ChlReceiver = "RCVR"
)

// MaxChannelName is the longest channel name (as MQ).
const MaxChannelName = 20

// Channel is a channel definition, shared by the group: every member's
// channel initiator can run any sender and accept any receiver.
type Channel struct {
	Name     string `json:"CHANNEL"`
	Type     string `json:"CHLTYPE"`  // SDR or RCVR
	ConnName string `json:"CONNAME"`  // SDR: host(port)[,host(port)...], tried in turn
	XmitQ    string `json:"XMITQ"`    // SDR: the transmission queue
	BatchSz  int    `json:"BATCHSZ"`  // messages per batch, 1..9999; default 50
	BatchInt int    `json:"BATCHINT"` // ms to wait to fill a batch; default 0
	HBInt    int    `json:"HBINT"`    // heartbeat interval, s; default 300
	DiscInt  int    `json:"DISCINT"`  // SDR: s idle before the channel ends; 0 never; default 6000
	ShortRty int    `json:"SHORTRTY"` // default 10
	ShortTmr int    `json:"SHORTTMR"` // s; default 60
	LongRty  int    `json:"LONGRTY"`  // default 999999999
	LongTmr  int    `json:"LONGTMR"`  // s; default 1200
	NPMSpeed string `json:"NPMSPEED"` // FAST or NORMAL; default FAST
	MaxMsgL  int    `json:"MAXMSGL"`  // default 4194304
	SSLCert  string `json:"SSLCERT"`  // TLS certificate file (PEM); empty: no TLS
	SSLKey   string `json:"SSLKEY"`   // TLS key file (PEM)
	SSLCA    string `json:"SSLCA"`    // CA file (PEM) the partner's certificate must chain to
	// SSLPeer is the pattern the partner's certificate subject must match
	// ("CN=QM2,O=Example", * wildcards in values; see ParsePeerName);
	// empty: any certificate that chains to SSLCA.
	SSLPeer string `json:"SSLPEER"`
	// AuthKey is the channel's secret, the same on both sides: each proves
	// it knows it in the HELLO exchange (HMAC-SHA256 challenge-response).
	// Never displayed. Empty: none.
	AuthKey string `json:"AUTHKEY"`
	// Auth says whether the channel runs only with an authenticated
	// partner: REQUIRED (the default; empty means REQUIRED) or OPTIONAL (a
	// channel with neither AUTHKEY nor TLS with SSLPEER runs with anyone:
	// for tests and demonstrations on one host).
	Auth string `json:"AUTH"`
	// RQMName (RCVR): the partner's queue manager, or its group: a HELLO
	// naming neither is refused. Empty: any.
	RQMName string `json:"RQMNAME"`
	// InQueues (RCVR) is what inbound messages may be put to: APPL (the
	// default; empty means APPL), application queues only, not SYSTEM.*
	// queues nor transmission queues; ALL, transmission queues and
	// SYSTEM.* queues too (routing through this group), but never the
	// group's own channel state (SYSTEM.QSG.*).
	InQueues string `json:"INQUEUES"`
	Descr    string `json:"DESCR"`

	Created time.Time `json:"-"`
	Altered time.Time `json:"-"`
}

// DefaultChannel is a channel of type typ with MQ's defaults.
func DefaultChannel(name, typ string) Channel {
	c := Channel{Name: name, Type: typ, BatchSz: 50, HBInt: 300, DiscInt: 6000, ShortRty: 10,
		ShortTmr: 60, LongRty: 999_999_999, LongTmr: 1200, NPMSpeed: "FAST", MaxMsgL: 4 << 20, Auth: AuthRequired}
	if typ == ChlReceiver {
		c.InQueues = InQueuesAppl
	}
	return c
}

// Values of AUTH and INQUEUES.
const (
	AuthRequired = "REQUIRED"
	AuthOptional = "OPTIONAL"
	InQueuesAppl = "APPL"
	InQueuesAll  = "ALL"
)

// AuthKey limits: a secret shorter than MinAuthKey is refused (an
// eavesdropper or a fake partner holding one proof may try every guess
// offline); printable ASCII.
const (
	MinAuthKey = 16
	MaxAuthKey = 256
)

// AuthRequired reports whether the channel runs only with an
// authenticated partner (AUTH(REQUIRED), the default).
func (c Channel) AuthRequired() bool { return c.Auth != AuthOptional }

// TLSAuthenticates reports whether the channel's TLS configuration
// authenticates the partner: a certificate is verified (a receiver
// requires one, with SSLCA) and bound to this channel by SSLPEER.
func (c Channel) TLSAuthenticates() bool {
	return c.SSLCert != "" && c.SSLPeer != "" && (c.Type == ChlSender || c.SSLCA != "")
}

// InQueuesAll reports whether inbound messages may go to transmission
// and SYSTEM.* queues (INQUEUES(ALL)).
func (c Channel) InQueuesAll() bool { return c.InQueues == InQueuesAll }

// validateAuth checks the authentication attributes.
func (c Channel) validateAuth() error {
	switch {
	case c.Auth != "" && c.Auth != AuthRequired && c.Auth != AuthOptional:
		return fmt.Errorf("%w: AUTH(%s) is not REQUIRED or OPTIONAL", ErrBadValue, c.Auth)
	case c.AuthKey != "" && (len(c.AuthKey) < MinAuthKey || len(c.AuthKey) > MaxAuthKey):
		return fmt.Errorf("%w: AUTHKEY of %d characters (%d to %d)", ErrBadValue, len(c.AuthKey), MinAuthKey, MaxAuthKey)
	case strings.IndexFunc(c.AuthKey, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return fmt.Errorf("%w: AUTHKEY of other than printable ASCII characters", ErrBadValue)
	case c.SSLPeer != "" && c.SSLCert == "":
		return fmt.Errorf("%w: SSLPEER is for a TLS channel (SSLCERT and SSLKEY)", ErrBadValue)
	case c.SSLPeer != "" && c.Type == ChlReceiver && c.SSLCA == "":
		return fmt.Errorf("%w: SSLPEER on a receiver needs SSLCA (without it no client certificate is asked for)", ErrBadValue)
	case c.AuthRequired() && c.AuthKey == "" && !c.TLSAuthenticates():
		need := "SSLCERT, SSLKEY and SSLPEER"
		if c.Type == ChlReceiver {
			need = "SSLCERT, SSLKEY, SSLCA and SSLPEER"
		}
		return fmt.Errorf("%w: channel %s cannot authenticate its partner: it needs AUTHKEY (the same secret on both sides) or TLS with %s; or AUTH(OPTIONAL), which lets anyone who can reach the port run it", ErrBadValue, c.Name, need)
	}
	if c.SSLPeer != "" {
		if _, err := ParsePeerName(c.SSLPeer); err != nil {
			return err
		}
	}
	return nil
}

// ValidChannelName reports whether s is a valid channel name: 1 to 20 of
// the characters of object names.
func ValidChannelName(s string) bool { return len(s) <= MaxChannelName && ValidName(s) }

// Validate checks a channel definition.
func (c Channel) Validate() error {
	switch {
	case !ValidChannelName(c.Name):
		return fmt.Errorf("%w: channel name %q (1 to %d characters)", ErrBadName, c.Name, MaxChannelName)
	case c.Type != ChlSender && c.Type != ChlReceiver:
		return fmt.Errorf("%w: CHLTYPE(%s) is not SDR or RCVR", ErrBadValue, c.Type)
	case c.BatchSz < 1 || c.BatchSz > 9999:
		return fmt.Errorf("%w: BATCHSZ(%d) not in 1..9999", ErrBadValue, c.BatchSz)
	case c.BatchInt < 0 || c.BatchInt > 999_999_999:
		return fmt.Errorf("%w: BATCHINT(%d) not in 0..999999999", ErrBadValue, c.BatchInt)
	case c.HBInt < 0 || c.HBInt > 999_999:
		return fmt.Errorf("%w: HBINT(%d) not in 0..999999", ErrBadValue, c.HBInt)
	case c.DiscInt < 0 || c.DiscInt > 999_999:
		return fmt.Errorf("%w: DISCINT(%d) not in 0..999999", ErrBadValue, c.DiscInt)
	case c.ShortRty < 0 || c.ShortRty > 999_999_999, c.LongRty < 0 || c.LongRty > 999_999_999:
		return fmt.Errorf("%w: SHORTRTY and LONGRTY are in 0..999999999", ErrBadValue)
	case c.ShortTmr < 0 || c.ShortTmr > 999_999_999, c.LongTmr < 0 || c.LongTmr > 999_999_999:
		return fmt.Errorf("%w: SHORTTMR and LONGTMR are in 0..999999999", ErrBadValue)
	case c.NPMSpeed != "FAST" && c.NPMSpeed != "NORMAL":
		return fmt.Errorf("%w: NPMSPEED(%s) is not FAST or NORMAL", ErrBadValue, c.NPMSpeed)
	case c.MaxMsgL < 0 || c.MaxMsgL > 100<<20:
		return fmt.Errorf("%w: MAXMSGL(%d) not in 0..104857600", ErrBadValue, c.MaxMsgL)
	case (c.SSLCert == "") != (c.SSLKey == ""):
		return fmt.Errorf("%w: SSLCERT and SSLKEY go together", ErrBadValue)
	case len(c.Descr) > 64:
		return fmt.Errorf("%w: DESCR longer than 64 characters", ErrBadValue)
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if c.Type == ChlSender {
		if c.RQMName != "" || c.InQueues != "" {
			return fmt.Errorf("%w: RQMNAME and INQUEUES are for receiver channels", ErrBadValue)
		}
		if !ValidName(c.XmitQ) {
			return fmt.Errorf("%w: a sender channel needs XMITQ(queue)", ErrBadValue)
		}
		if _, err := c.Addresses(); err != nil {
			return err
		}
	} else if c.ConnName != "" || c.XmitQ != "" {
		return fmt.Errorf("%w: CONNAME and XMITQ are for sender channels", ErrBadValue)
	} else if c.RQMName != "" && !ValidName(c.RQMName) {
		return fmt.Errorf("%w: RQMNAME(%s) is not a queue manager or group name", ErrBadValue, c.RQMName)
	} else if c.InQueues != "" && c.InQueues != InQueuesAppl && c.InQueues != InQueuesAll {
		return fmt.Errorf("%w: INQUEUES(%s) is not APPL or ALL", ErrBadValue, c.InQueues)
	}
	return nil
}

// Addresses parses CONNAME: host(port) entries separated by commas, each a
// host:port to dial; a missing (port) means 1414.
func (c Channel) Addresses() ([]string, error) {
	if strings.TrimSpace(c.ConnName) == "" {
		return nil, fmt.Errorf("%w: a sender channel needs CONNAME('host(port)')", ErrBadValue)
	}
	var out []string
	for _, part := range strings.Split(c.ConnName, ",") {
		part = strings.TrimSpace(part)
		host, port := part, "1414"
		if i := strings.IndexByte(part, '('); i >= 0 {
			if !strings.HasSuffix(part, ")") {
				return nil, fmt.Errorf("%w: CONNAME entry %q: host(port)", ErrBadValue, part)
			}
			host, port = part[:i], part[i+1:len(part)-1]
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: CONNAME entry %q: port %q", ErrBadValue, part, port)
		}
		if host == "" || strings.ContainsAny(host, " ()") {
			return nil, fmt.Errorf("%w: CONNAME entry %q: host", ErrBadValue, part)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// QRemote loads a remote queue definition.
func (t *Tx) QRemote(name string) (QRemote, error) {
	q := QRemote{}
	c, a, err := t.Load(TypeQRemote, name, &q)
	q.Created, q.Altered = c, a
	return q, err
}

// QRemotes loads the remote queues matching pattern.
func (t *Tx) QRemotes(pattern string) ([]QRemote, error) {
	return loadAll(t, TypeQRemote, pattern, t.QRemote)
}

// Channel loads a channel definition.
func (t *Tx) Channel(name string) (Channel, error) {
	c := Channel{}
	cr, a, err := t.Load(TypeChannel, name, &c)
	c.Created, c.Altered = cr, a
	return c, err
}

// Channels loads the channels matching pattern.
func (t *Tx) Channels(pattern string) ([]Channel, error) {
	return loadAll(t, TypeChannel, pattern, t.Channel)
}
