package lockfree

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Message is what applications put and get: the descriptor fields later
// layers need, properties and body.
type Message struct {
	MsgID        [idBytes]byte // generated on put when all zero
	CorrelID     [idBytes]byte
	Format       [formatBytes]byte
	Priority     int   // 0 (lowest) to 9
	Persistent   bool  // recorded for the persistence layer
	Expiry       int64 // absolute Unix ns after which the message is never returned; 0 never expires
	PutTime      int64 // Unix ns; set on put when zero
	BackoutCount uint32
	ReplyToQ     string // at most 48 bytes
	ReplyToQMgr  string // at most 48 bytes
	Properties   []byte
	Body         []byte
	// Key identifies a persistent message to the recovery logs (the
	// persistence layer assigns it; 0: none). Stored and returned as is.
	Key uint64
	// Offload, when not nil, is the encoded reference (OffloadRefSize
	// bytes, opaque here: package smds) of a body kept in a shared message
	// data set instead of the CF; Body is then empty and OffloadLen is the
	// body's length. A get, browse or view returns them as put; freeing the
	// entry calls the structure's offload-free hook with the reference
	// (SetOffloadFree).
	Offload    []byte
	OffloadLen int
	// Token, on a get, browse or view, names the entry that holds the
	// message: (entry index + 1) << genBits | the entry's gen. It stays
	// the same while the message is on its queue (a backout gives the
	// same entry back), and two messages on the structure at once never
	// share it. Ignored on put.
	Token uint64
}

// Entry flag bits (byte 3 of the enQueue word).
const (
	efPersistent = 1 << 0
	efOffloaded  = 1 << 1 // the variable part starts with an OffloadRefSize-byte reference; no body in the CF
)

// OffloadRefSize is the size of an offloaded message's reference
// (smds.RefSize).
const OffloadRefSize = 32

// putterStamp identifies the unit of work a put belongs to, for the getters'
// ordering rule (see claimSublog): owner tag << 32 | uow seq (31 bits) for a
// put under syncpoint; a put outside syncpoint belongs to no unit of work
// and gets bit 31 set and a per-put number, so it never matches one.
func (o *Owner) putterStamp(sync bool) uint64 {
	if sync {
		return uint64(o.tag)<<32 | uint64(o.uowSeq&0x7fffffff)
	}
	o.putSeq++
	return uint64(o.tag)<<32 | 1<<31 | uint64(o.putSeq&0x7fffffff)
}

// varLayout is where the variable part of an entry goes: reply-to queue,
// reply-to queue manager, properties, body, in that order.
func (m *Message) varLen() int {
	if m.Offload != nil {
		return OffloadRefSize + len(m.ReplyToQ) + len(m.ReplyToQMgr) + len(m.Properties)
	}
	return len(m.ReplyToQ) + len(m.ReplyToQMgr) + len(m.Properties) + len(m.Body)
}

// bodyLen is the length of m's body, wherever it is.
func (m *Message) bodyLen() int {
	if m.Offload != nil {
		return m.OffloadLen
	}
	return len(m.Body)
}

// checkOffload checks an offloaded message before its put.
func (m *Message) checkOffload() error {
	switch {
	case m.Offload == nil:
		return nil
	case len(m.Offload) != OffloadRefSize:
		return fmt.Errorf("%w: offload reference of %d bytes, want %d", ErrBadMessage, len(m.Offload), OffloadRefSize)
	case len(m.Body) != 0:
		return fmt.Errorf("%w: an offloaded message has its body in its data set, not in Body", ErrBadMessage)
	case m.OffloadLen < 0 || m.OffloadLen > 1<<32-1:
		return fmt.Errorf("%w: offloaded body of %d bytes", ErrBadMessage, m.OffloadLen)
	}
	return nil
}

// fillEntry writes m into entry e (alloc(o), gen g), allocating and tagging
// data elements when the variable part does not fit inline.
func (o *Owner) fillEntry(e uint32, q uint32, m *Message, putTime int64, sync bool) error {
	s := o.s
	if len(m.ReplyToQ) > MaxNameLen || len(m.ReplyToQMgr) > MaxNameLen {
		return fmt.Errorf("%w: reply-to name longer than %d", ErrBadName, MaxNameLen)
	}
	eo := s.entryOff(e)
	var flags uint64
	if m.Persistent {
		flags |= efPersistent
	}
	body := m.Body
	if m.Offload != nil {
		flags |= efOffloaded
		body = m.Offload // first in the variable part, see varLen
	}
	s.storeOwned(eo+enPutter, o.putterStamp(sync))
	s.storeOwned(eo+enQueue, uint64(q)&0xffff|uint64(m.Priority)<<16|flags<<24|uint64(m.bodyLen())<<32)
	s.storeOwned(eo+enPutTime, uint64(putTime))
	s.storeOwned(eo+enExpiry, uint64(m.Expiry))
	s.storeOwned(eo+enKey, m.Key)
	s.storeOwned(eo+enBackout, uint64(len(m.Properties))<<32|uint64(m.BackoutCount))
	id := m.MsgID
	if id == ([idBytes]byte{}) {
		o.msgSeq++
		binary.BigEndian.PutUint64(id[miReg:], uint64(s.load(o.off+ownReg)))
		binary.BigEndian.PutUint32(id[miTag:], uint32(o.tag))
		binary.BigEndian.PutUint64(id[miSeq:], o.msgSeq)
		binary.BigEndian.PutUint32(id[miPid:], uint32(s.self.Pid))
		m.MsgID = id
	}
	copy(s.mem.Bytes(eo+enMsgID, idBytes), id[:])
	copy(s.mem.Bytes(eo+enCorrelID, idBytes), m.CorrelID[:])
	copy(s.mem.Bytes(eo+enFormat, formatBytes), m.Format[:])
	rl := s.mem.Bytes(eo+enReplyLen, 8)
	rl[0], rl[1] = byte(len(m.ReplyToQ)), byte(len(m.ReplyToQMgr))
	n := m.varLen()
	if n <= InlineMax {
		b := s.mem.Bytes(eo+enInline, InlineMax)
		k := 0
		if m.Offload != nil {
			k = copy(b, m.Offload)
		}
		k += copy(b[k:], m.ReplyToQ)
		k += copy(b[k:], m.ReplyToQMgr)
		k += copy(b[k:], m.Properties)
		if m.Offload == nil {
			copy(b[k:], body)
		}
		s.storeOwned(eo+enDataRef, uint64(n)<<32)
		return nil
	}
	es := s.p.ElementSize
	k := (n + es - 1) / es
	// The elements are tagged as this entry's as they are taken: from
	// there a repair that frees the entry finds them by their tag.
	els, err := o.allocElems(k, e, o.scratchIdx(k))
	if err != nil {
		return err
	}
	for i, el := range els {
		next := uint32(0)
		if i+1 < len(els) {
			next = els[i+1] + 1
		}
		s.setElemNext(el, next)
	}
	w := chunkWriter{s: s, els: els, es: es}
	if m.Offload != nil {
		w.writeB(m.Offload)
	}
	w.write(m.ReplyToQ)
	w.write(m.ReplyToQMgr)
	w.writeB(m.Properties)
	if m.Offload == nil {
		w.writeB(body)
	}
	s.storeOwned(eo+enDataRef, uint64(n)<<32|uint64(els[0]+1))
	return nil
}

func (o *Owner) scratchIdx(k int) []uint32 {
	if cap(o.idxScratch) < k {
		o.idxScratch = make([]uint32, 0, k)
	}
	return o.idxScratch[:0]
}

type chunkWriter struct {
	s   *Structure
	els []uint32
	es  int
	i   int // element
	off int // offset within element
}

func (w *chunkWriter) write(src string) {
	for len(src) > 0 {
		d := w.s.elemData(w.els[w.i])[w.off:]
		n := copy(d, src)
		src = src[n:]
		w.advance(n)
	}
}

func (w *chunkWriter) writeB(src []byte) {
	for len(src) > 0 {
		d := w.s.elemData(w.els[w.i])[w.off:]
		n := copy(d, src)
		src = src[n:]
		w.advance(n)
	}
}

func (w *chunkWriter) advance(n int) {
	w.off += n
	if w.off == w.es {
		w.i++
		w.off = 0
	}
}

// untagElems gives the elements of an unused entry back to the owner's
// cache (a put that failed before linking).
func (o *Owner) untagElems(e uint32) {
	s := o.s
	eo := s.entryOff(e)
	dr := s.load(eo + enDataRef)
	s.store(eo+enDataRef, 0)
	o.walkElems(e, dr, func(el uint32, w uint64) {
		s.store(s.elemWordOff(el), mkWord(wGen(w), ekOwned, uint32(o.tag)))
		o.cacheElem(el)
	})
}

// walkElems calls f for each element of entry e's chain (dataRef dr) that
// is still tagged as e's. The chain is bounded by the variable-part length
// and the number of elements, so a corrupt link cannot loop long.
func (o *Owner) walkElems(e uint32, dr uint64, f func(el uint32, w uint64)) {
	s := o.s
	first := uint32(dr)
	if first == 0 {
		return
	}
	n := min((int(dr>>32)+s.p.ElementSize-1)/s.p.ElementSize, s.p.Elements)
	el := first - 1
	for k := 0; k < n && el < uint32(s.p.Elements); k++ {
		nx := s.elemNext(el)
		w := s.load(s.elemWordOff(el))
		if wKind(w) == ekMsg && wVal(w) == e {
			f(el, w)
		}
		if nx == 0 {
			break
		}
		el = nx - 1
	}
}

// entryMeta decodes the fixed fields of an entry into m (body excluded).
//
// For an offloaded message (off), bodyLen is its body's length in its data
// set and the variable part holds the reference, not the body: inCF is the
// number of body bytes the variable part holds (bodyLen, or 0 when off).
func (s *Structure) entryMeta(eo uint64, m *Message) (varLen int, bodyLen int, propsLen int, rq, rqm int, off bool) {
	qw := s.load(eo + enQueue)
	m.Priority = int(qw>>16) & 0xff
	m.Persistent = (qw>>24)&efPersistent != 0
	off = (qw>>24)&efOffloaded != 0
	bodyLen = int(qw >> 32)
	m.PutTime = int64(s.load(eo + enPutTime))
	m.Expiry = int64(s.load(eo + enExpiry))
	m.Key = s.load(eo + enKey)
	m.Token = ((eo-s.l.entries)/entrySize+1)<<genBits | uint64(wGen(s.load(eo+enCtl)))
	bw := s.load(eo + enBackout)
	m.BackoutCount = uint32(bw)
	propsLen = int(bw >> 32)
	copy(m.MsgID[:], s.mem.Bytes(eo+enMsgID, idBytes))
	copy(m.CorrelID[:], s.mem.Bytes(eo+enCorrelID, idBytes))
	copy(m.Format[:], s.mem.Bytes(eo+enFormat, formatBytes))
	rl := s.mem.Bytes(eo+enReplyLen, 2)
	rq, rqm = int(rl[0]), int(rl[1])
	varLen = int(s.load(eo+enDataRef) >> 32)
	return
}

// chunks calls f with the pieces of entry eo's variable part, in order. It
// stops early when f returns false. Bounds are checked so that a message
// being freed under a browser yields garbage (caught by the browser's gen
// check) rather than a fault, and a chain that loops ends after as many
// pieces as the structure has elements (callers compare the bytes they got
// with the length).
func (s *Structure) chunks(eo uint64, f func([]byte) bool) {
	dr := s.load(eo + enDataRef)
	n := int(dr >> 32)
	first := uint32(dr)
	if first == 0 {
		if n > InlineMax {
			n = InlineMax
		}
		f(s.mem.Bytes(eo+enInline, uint64(n)))
		return
	}
	el := first - 1
	es := s.p.ElementSize
	for k := 0; n > 0 && el < uint32(s.p.Elements) && k < s.p.Elements; k++ {
		k := min(n, es)
		if !f(s.elemData(el)[:k]) {
			return
		}
		n -= k
		nx := s.elemNext(el)
		if nx == 0 {
			return
		}
		el = nx - 1
	}
}

// readEntry copies entry eo into m, reusing m's slices. It reports false
// when the entry's lengths do not add up, which only happens when a browser
// reads an entry that is being freed; the browser then revalidates.
func (o *Owner) readEntry(eo uint64, m *Message) bool {
	s := o.s
	varLen, bodyLen, propsLen, rq, rqm, off := s.entryMeta(eo, m)
	lead, inCF := 0, bodyLen
	if off {
		lead, inCF = OffloadRefSize, 0
	}
	if varLen != lead+rq+rqm+propsLen+inCF || uint64(varLen) > s.maxVar() {
		return false
	}
	if varLen > cap(o.scratch) {
		o.scratch = make([]byte, 0, varLen)
	}
	buf := o.scratch[:0]
	s.chunks(eo, func(b []byte) bool { buf = append(buf, b...); return len(buf) <= varLen })
	if len(buf) != varLen {
		return false
	}
	m.Offload, m.OffloadLen = nil, 0
	if off {
		m.Offload = append(make([]byte, 0, OffloadRefSize), buf[:lead]...)
		m.OffloadLen = bodyLen
		buf = buf[lead:]
	}
	m.ReplyToQ = string(buf[:rq])
	m.ReplyToQMgr = string(buf[rq : rq+rqm])
	m.Properties = append(m.Properties[:0], buf[rq+rqm:rq+rqm+propsLen]...)
	m.Body = append(m.Body[:0], buf[rq+rqm+propsLen:]...)
	return true
}

// offloadRef returns a copy of the reference of the offloaded message in
// entry eo (nil when it is not offloaded or its lengths do not add up).
func (s *Structure) offloadRef(eo uint64) []byte {
	if (s.load(eo+enQueue)>>24)&efOffloaded == 0 {
		return nil
	}
	if n := s.load(eo+enDataRef) >> 32; n < OffloadRefSize || n > s.maxVar() {
		return nil
	}
	ref := make([]byte, 0, OffloadRefSize)
	s.chunks(eo, func(b []byte) bool {
		ref = append(ref, b[:min(len(b), OffloadRefSize-len(ref))]...)
		return len(ref) < OffloadRefSize
	})
	if len(ref) != OffloadRefSize {
		return nil
	}
	return ref
}

// maxVar is the longest variable part the structure can hold.
func (s *Structure) maxVar() uint64 {
	return max(uint64(s.p.Elements)*uint64(s.p.ElementSize), InlineMax)
}

func nowNanos() int64 { return time.Now().UnixNano() }
