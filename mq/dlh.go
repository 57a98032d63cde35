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
// dead-letter queue, saying why and where it was going. Its byte layout is
// the table above dlhSize.
type DLH struct {
	Reason     Reason
	DestQ      string
	DestQMgr   string
	OrigFormat string
	Time       time.Time
}

// Dead-letter header layout (dlhSize bytes, little-endian; the original
// body follows):
//
//	offset  size  constant     field
//	     0     4  dlMagic      magic "DLH "
//	     4     4  dlVersion    version (dlhVersion)
//	     8     4  dlReason     reason code
//	    12    48  dlDestQ      destination queue, NUL padded
//	    60    48  dlDestQMgr   destination queue manager, NUL padded
//	   108     8  dlFormat     original format, space padded
//	   116     8  dlTime       time it was dead-lettered, Unix ns
//	   124     4  -            zero
const (
	dlMagic    = 0
	dlVersion  = 4
	dlReason   = 8
	dlDestQ    = 12
	dlDestQMgr = 60
	dlFormat   = 108
	dlTime     = 116
	dlhSize    = 128
	dlhVersion = 1
	dlhMagic   = "DLH "
	dlNameLen  = 48
	dlFmtLen   = 8
)

// ErrBadDLH is returned by ParseDLH for bytes that are not a DLH.
var ErrBadDLH = errors.New("mq: not a dead-letter header")

// Encode renders the header followed by body.
func (d DLH) Encode(body []byte) []byte {
	b := make([]byte, dlhSize, dlhSize+len(body))
	copy(b[dlMagic:], dlhMagic)
	binary.LittleEndian.PutUint32(b[dlVersion:], dlhVersion)
	binary.LittleEndian.PutUint32(b[dlReason:], uint32(d.Reason))
	copy(b[dlDestQ:dlDestQ+dlNameLen], d.DestQ)
	copy(b[dlDestQMgr:dlDestQMgr+dlNameLen], d.DestQMgr)
	f := d.OrigFormat + "        "
	copy(b[dlFormat:dlFormat+dlFmtLen], f[:dlFmtLen])
	binary.LittleEndian.PutUint64(b[dlTime:], uint64(d.Time.UnixNano()))
	return append(b, body...)
}

// ParseDLH splits a dead-letter message body into its header and the
// original body. It never panics, whatever the bytes.
func ParseDLH(b []byte) (DLH, []byte, error) {
	var d DLH
	if len(b) < dlhSize || string(b[dlMagic:dlMagic+len(dlhMagic)]) != dlhMagic {
		return d, nil, ErrBadDLH
	}
	if v := binary.LittleEndian.Uint32(b[dlVersion:]); v != dlhVersion {
		return d, nil, fmt.Errorf("%w: version %d", ErrBadDLH, v)
	}
	d.Reason = Reason(binary.LittleEndian.Uint32(b[dlReason:]))
	d.DestQ = cstr(b[dlDestQ : dlDestQ+dlNameLen])
	d.DestQMgr = cstr(b[dlDestQMgr : dlDestQMgr+dlNameLen])
	d.OrigFormat = string(bytes.TrimRight(b[dlFormat:dlFormat+dlFmtLen], " \x00"))
	d.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(b[dlTime:])))
	return d, b[dlhSize:], nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
