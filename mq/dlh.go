package mq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// FormatDeadLetter is the format of a message on the dead-letter queue: its
// body starts with a DLH.
const FormatDeadLetter = "MQDEAD"

// DLH is the dead-letter header put in front of a message moved to the
// dead-letter queue, saying why and where it was going.
//
// Byte layout (little-endian), 128 bytes, then the original body:
//
//	  0  4 magic "DLH "
//	  4  4 version (1)
//	  8  4 reason code
//	 12 48 destination queue, NUL padded
//	 60 48 destination queue manager, NUL padded
//	108  8 original format, space padded
//	116  8 time it was dead-lettered, Unix ns
//	124  4 zero
type DLH struct {
	Reason     Reason
	DestQ      string
	DestQMgr   string
	OrigFormat string
	Time       time.Time
}

const dlhSize = 128

// ErrBadDLH is returned by ParseDLH for bytes that are not a DLH.
var ErrBadDLH = errors.New("mq: not a dead-letter header")

// Encode renders the header followed by body.
func (d DLH) Encode(body []byte) []byte {
	b := make([]byte, dlhSize, dlhSize+len(body))
	copy(b, "DLH ")
	binary.LittleEndian.PutUint32(b[4:], 1)
	binary.LittleEndian.PutUint32(b[8:], uint32(d.Reason))
	copy(b[12:60], d.DestQ)
	copy(b[60:108], d.DestQMgr)
	f := d.OrigFormat + "        "
	copy(b[108:116], f[:8])
	binary.LittleEndian.PutUint64(b[116:], uint64(d.Time.UnixNano()))
	return append(b, body...)
}

// ParseDLH splits a dead-letter message body into its header and the
// original body. It never panics, whatever the bytes.
func ParseDLH(b []byte) (DLH, []byte, error) {
	var d DLH
	if len(b) < dlhSize || string(b[:4]) != "DLH " {
		return d, nil, ErrBadDLH
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != 1 {
		return d, nil, fmt.Errorf("%w: version %d", ErrBadDLH, v)
	}
	d.Reason = Reason(binary.LittleEndian.Uint32(b[8:]))
	d.DestQ = cstr(b[12:60])
	d.DestQMgr = cstr(b[60:108])
	d.OrigFormat = string(bytes.TrimRight(b[108:116], " \x00"))
	d.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(b[116:])))
	return d, b[dlhSize:], nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
