package cli

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// shownHeader is the JSON line qmgr get --headers writes before the
// original body of a message that carries a header of the group's: a
// dead-letter header ("dead-letter") or an Unexpected Message Queue
// header ("unexpected"). Error is set, and the body shown whole, when the
// header does not parse.
type shownHeader struct {
	Header     string `json:"header"`
	Reason     string `json:"reason,omitempty"`
	DestQ      string `json:"dest_q,omitempty"`
	DestQMgr   string `json:"dest_qmgr,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	CorrelID   string `json:"correl_id,omitempty"`
	OrigQ      string `json:"orig_q,omitempty"`
	OrigFormat string `json:"orig_format,omitempty"`
	Time       string `json:"time,omitempty"`
	Error      string `json:"error,omitempty"`
}

// writeHeader writes the line of m's header, when its format names one,
// and returns the body to show: the original body after the header, or
// m's whole body (no header, or one that does not parse).
func writeHeader(w io.Writer, m *mq.Message) []byte {
	var h shownHeader
	body := m.Body
	switch strings.TrimRight(m.Format, " ") {
	case mq.FormatDeadLetter:
		h.Header = "dead-letter"
		d, rest, err := mq.ParseDLH(m.Body)
		if err != nil {
			h.Error = err.Error()
			break
		}
		h.Reason, h.DestQ, h.DestQMgr, h.OrigFormat, h.Time = d.Reason.String(), d.DestQ, d.DestQMgr, d.OrigFormat, stamp(d.Time)
		body = rest
	case request.FormatUnexpected:
		h.Header = "unexpected"
		u, rest, err := request.ParseUnexpectedHeader(m.Body)
		if err != nil {
			h.Error = err.Error()
			break
		}
		h.Reason, h.OrigQ, h.OrigFormat, h.Time = u.Reason.String(), u.OrigQ, u.OrigFormat, stamp(u.Time)
		h.RequestID, h.CorrelID = hex.EncodeToString(u.RequestID[:]), hex.EncodeToString(u.CorrelID[:])
		body = rest
	default:
		return body
	}
	b, _ := json.Marshal(h) // strings only: it cannot fail
	io.WriteString(w, "# ")
	w.Write(b)
	io.WriteString(w, "\n")
	return body
}

// stamp is t in RFC 3339 with nanoseconds, UTC; empty for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() || t.UnixNano() == 0 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
