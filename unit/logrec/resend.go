package logrec

import "fmt"

const resendMagic = "RURS"

// PriorityDefault is a resend entry's priority byte for "the queue's
// default" (mq.PriorityAsQDef).
const PriorityDefault = 0xff

// Resend is one output of a resend queue carried in a snapshot.
type Resend struct {
	LSN         uint64
	Seq         uint64
	Dest        string
	MsgID       [24]byte
	CorrelID    [24]byte
	Format      string
	Priority    uint8 // 0..9 or PriorityDefault
	Persistence uint8 // mq.Persistence: 0, 1 or 2
	Expiry      int64 // Unix ns, 0: never
	ReplyToQ    string
	ReplyToQMgr string
	Properties  []byte
	Body        []byte
}

func (e *Resend) validate() error {
	switch {
	case e.LSN == 0 || e.Seq == 0:
		return fmt.Errorf("LSN %d seq %d", e.LSN, e.Seq)
	case e.Dest == "" || !validName(e.Dest, nameLen):
		return fmt.Errorf("destination %q", e.Dest)
	case !validName(e.Format, formatLen):
		return fmt.Errorf("format %q", e.Format)
	case !validName(e.ReplyToQ, nameLen) || !validName(e.ReplyToQMgr, nameLen):
		return fmt.Errorf("reply-to %q %q", e.ReplyToQ, e.ReplyToQMgr)
	case e.Priority > 9 && e.Priority != PriorityDefault:
		return fmt.Errorf("priority %d", e.Priority)
	case e.Persistence > 2:
		return fmt.Errorf("persistence %d", e.Persistence)
	case uint64(len(e.Properties)) > 1<<32-1 || uint64(len(e.Body)) > 1<<32-1:
		return fmt.Errorf("properties or body over 4 GiB")
	}
	return nil
}

// EncodeResend returns the resend section of a snapshot stream holding
// rs, which must be in LSN order.
func EncodeResend(rs []Resend) ([]byte, error) {
	if uint64(len(rs)) > 1<<32-1 {
		return nil, fmt.Errorf("%w: resend section of %d entries", ErrInvalid, len(rs))
	}
	n := rsHeaderSize
	for i := range rs {
		n += resendFixedSize + len(rs[i].Properties) + len(rs[i].Body)
	}
	b := make([]byte, rsHeaderSize, n)
	copy(b[rsMagic:], resendMagic)
	b[rsVersion] = Version
	le.PutUint32(b[rsCount:], uint32(len(rs)))
	for i := range rs {
		e := &rs[i]
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("%w: resend entry %d: %v", ErrInvalid, i, err)
		}
		if i > 0 && rs[i-1].LSN > e.LSN {
			return nil, fmt.Errorf("%w: resend entry %d: LSN %d after %d", ErrInvalid, i, e.LSN, rs[i-1].LSN)
		}
		var f [resendFixedSize]byte
		le.PutUint64(f[reLSN:], e.LSN)
		le.PutUint64(f[reSeq:], e.Seq)
		putName(f[reDest:reDest+nameLen], e.Dest)
		copy(f[reMsgID:], e.MsgID[:])
		copy(f[reCorrelID:], e.CorrelID[:])
		putName(f[reFormat:reFormat+formatLen], e.Format)
		f[rePriority] = e.Priority
		f[rePersistence] = e.Persistence
		le.PutUint64(f[reExpiry:], uint64(e.Expiry))
		putName(f[reReplyToQ:reReplyToQ+nameLen], e.ReplyToQ)
		putName(f[reReplyToQMgr:reReplyToQMgr+nameLen], e.ReplyToQMgr)
		le.PutUint32(f[rePropsLen:], uint32(len(e.Properties)))
		le.PutUint32(f[reBodyLen:], uint32(len(e.Body)))
		b = append(b, f[:]...)
		b = append(b, e.Properties...)
		b = append(b, e.Body...)
	}
	return b, nil
}

// DecodeResend parses the resend section at the head of b and returns its
// entries with the number of bytes it took (the handler's bytes follow).
// It never panics, whatever the bytes: every count and length is checked
// against what remains before anything is allocated or sliced.
// ErrTruncated: b ends inside the section (a reader may wait for more).
func DecodeResend(b []byte) ([]Resend, int, error) {
	r := &reader{b: b, what: "resend section"}
	h := r.take(rsHeaderSize, "header")
	if h == nil {
		return nil, 0, r.err
	}
	if string(h[rsMagic:rsMagic+4]) != resendMagic {
		return nil, 0, fmt.Errorf("%w: resend section magic %q", ErrBadMagic, h[rsMagic:rsMagic+4])
	}
	if h[rsVersion] != Version {
		return nil, 0, fmt.Errorf("%w: resend section version %d", ErrVersion, h[rsVersion])
	}
	if !zero(h[rsVersion+1:rsCount]) || !zero(h[rsCount+4:rsEntries]) {
		return nil, 0, fmt.Errorf("%w: resend section: reserved bytes not zero", ErrCorrupt)
	}
	n := uint64(le.Uint32(h[rsCount:]))
	if n*resendFixedSize > uint64(r.left()) {
		return nil, 0, fmt.Errorf("%w: resend section of %d entries needs at least %d bytes, %d remain", ErrTruncated, n, n*resendFixedSize, r.left())
	}
	// The whole section must be there before anything is decoded or
	// copied: a reader that waits for more (a joiner, chunk by chunk)
	// calls again with every chunk, and would otherwise copy what it
	// already has each time.
	end := uint64(r.off)
	for i := uint64(0); i < n; i++ {
		if end+resendFixedSize > uint64(len(b)) {
			return nil, 0, fmt.Errorf("%w: resend section: entry %d of %d needs %d bytes at %d, %d remain", ErrTruncated, i, n, resendFixedSize, end, uint64(len(b))-min(end, uint64(len(b))))
		}
		f := b[end : end+resendFixedSize]
		end += resendFixedSize + uint64(le.Uint32(f[rePropsLen:])) + uint64(le.Uint32(f[reBodyLen:]))
	}
	if end > uint64(len(b)) {
		return nil, 0, fmt.Errorf("%w: resend section of %d entries needs %d bytes, %d remain", ErrTruncated, n, end, len(b))
	}
	var rs []Resend
	if n > 0 {
		rs = make([]Resend, n)
	}
	for i := range rs {
		f := r.take(resendFixedSize, "entry")
		if f == nil {
			return nil, 0, r.err
		}
		e := &rs[i]
		e.LSN, e.Seq = le.Uint64(f[reLSN:]), le.Uint64(f[reSeq:])
		copy(e.MsgID[:], f[reMsgID:])
		copy(e.CorrelID[:], f[reCorrelID:])
		e.Priority, e.Persistence = f[rePriority], f[rePersistence]
		e.Expiry = int64(le.Uint64(f[reExpiry:]))
		var ok [4]bool
		e.Dest, ok[0] = getName(f[reDest : reDest+nameLen])
		e.Format, ok[1] = getName(f[reFormat : reFormat+formatLen])
		e.ReplyToQ, ok[2] = getName(f[reReplyToQ : reReplyToQ+nameLen])
		e.ReplyToQMgr, ok[3] = getName(f[reReplyToQMgr : reReplyToQMgr+nameLen])
		if !ok[0] || !ok[1] || !ok[2] || !ok[3] {
			return nil, 0, fmt.Errorf("%w: resend entry %d: a name is not NUL padded", ErrCorrupt, i)
		}
		if !zero(f[rePersistence+1 : reExpiry]) {
			return nil, 0, fmt.Errorf("%w: resend entry %d: reserved bytes not zero", ErrCorrupt, i)
		}
		if err := e.validate(); err != nil {
			return nil, 0, fmt.Errorf("%w: resend entry %d: %v", ErrCorrupt, i, err)
		}
		if i > 0 && rs[i-1].LSN > e.LSN {
			return nil, 0, fmt.Errorf("%w: resend entry %d: LSN %d after %d", ErrCorrupt, i, e.LSN, rs[i-1].LSN)
		}
		e.Properties = clone(r.take(uint64(le.Uint32(f[rePropsLen:])), "properties"))
		e.Body = clone(r.take(uint64(le.Uint32(f[reBodyLen:])), "body"))
		if r.err != nil {
			return nil, 0, r.err
		}
	}
	return rs, r.off, nil
}
