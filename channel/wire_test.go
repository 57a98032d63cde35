package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
)

func sampleFrames() []byte {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Hello(Hello{Channel: "TO.R", QMgr: "QM1", Group: "QSG1", BatchSz: 50, MaxMsgL: 1 << 20, HBInt: 300, NPMFast: true, MinVer: 1, MaxVer: 1, InDoubt: 7})
	w.HelloAck(HelloAck{QMgr: "RQM", BatchSz: 50, MaxMsgL: 1 << 20, HBInt: 300, Version: 1, LastBatch: 6})
	w.MsgV([][]byte{bytes.Repeat([]byte{'m'}, 60), bytes.Repeat([]byte{'m'}, 40)}, 100)      // pieces gathered
	w.MsgV([][]byte{bytes.Repeat([]byte{'M'}, 3000), bytes.Repeat([]byte{'M'}, 2000)}, 5000) // pieces written without a copy
	w.EndBatch(7, 2)
	w.Confirm(7)
	w.Heartbeat()
	w.Close(ReasonSequence, "out of step")
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func TestFramesRoundTrip(t *testing.T) {
	r := NewReader(bytes.NewReader(sampleFrames()), 1<<20)
	want := []byte{FrameHello, FrameHelloAck, FrameMsg, FrameMsg, FrameEndBatch, FrameConfirm, FrameHeartbeat, FrameClose}
	for i, typ := range want {
		f, err := r.Read()
		if err != nil || f.Type != typ {
			t.Fatalf("frame %d: %v type %d, want %d", i, err, f.Type, typ)
		}
		switch typ {
		case FrameHello:
			h, err := DecodeHello(f.Payload)
			if err != nil || h.Channel != "TO.R" || h.QMgr != "QM1" || h.Group != "QSG1" || h.BatchSz != 50 || !h.NPMFast || h.InDoubt != 7 {
				t.Fatalf("hello %+v %v", h, err)
			}
		case FrameHelloAck:
			a, err := DecodeHelloAck(f.Payload)
			if err != nil || a.QMgr != "RQM" || a.LastBatch != 6 || a.HBInt != 300 {
				t.Fatalf("ack %+v %v", a, err)
			}
		case FrameMsg:
			if len(f.Payload) != 100 && len(f.Payload) != 5000 || !bytes.Equal(f.Payload, bytes.Repeat(f.Payload[:1], len(f.Payload))) {
				t.Fatalf("msg of %d bytes: its pieces not in order", len(f.Payload))
			}
		case FrameEndBatch:
			if id, n, err := DecodeEndBatch(f.Payload); err != nil || id != 7 || n != 2 {
				t.Fatalf("end batch %d %d %v", id, n, err)
			}
		case FrameConfirm:
			if id, err := DecodeConfirm(f.Payload); err != nil || id != 7 {
				t.Fatalf("confirm %d %v", id, err)
			}
		case FrameClose:
			if r, text, err := DecodeClose(f.Payload); err != nil || r != ReasonSequence || text != "out of step" {
				t.Fatalf("close %d %q %v", r, text, err)
			}
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
}

func TestReaderRefuses(t *testing.T) {
	good := sampleFrames()
	for name, b := range map[string][]byte{
		"magic":   append([]byte("XC"), good[2:]...),
		"version": append([]byte{'Q', 'C', 9}, good[3:]...),
		"type":    append([]byte{'Q', 'C', 1, 99}, good[4:]...),
		"length":  {'Q', 'C', 1, FrameMsg, 0xff, 0xff, 0xff, 0x7f},
	} {
		if _, err := NewReader(bytes.NewReader(b), 1<<20).Read(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewReader(bytes.NewReader(good[:20]), 1<<20).Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
}

func TestStatusRecordRoundTrip(t *testing.T) {
	st := Status{Name: "TO.R", Type: defs.ChlSender, State: Retrying, StopReq: true, Force: true, Owner: 3, OwnerInc: 9,
		Conn: 0x1234, Lanes: [MaxLanes]lockfree.OwnerTag{0x5678, 0, 0x9abc}, Updated: time.Unix(0, 42), XmitQ: "XQ", RQMName: "RQM", Address: "127.0.0.1:1414",
		InDoubt: 5, LastBatch: 4, Retries: 2, Msgs: 99, RetryAt: time.Unix(0, 77), ResetReq: true, Reason: PartnerLostState}
	if got := decodeStatus(st.encode()); got != st {
		t.Fatalf("round trip:\n%+v\n%+v", got, st)
	}
	del := Status{Name: "TO.R", Owner: -1, Deleted: true}
	if got := decodeStatus(del.encode()); got != del {
		t.Fatalf("deleted: %+v", got)
	}
	bad := st.encode()
	bad[recReason] = 200
	if got := decodeStatus(bad); got.Reason != NoStopReason {
		t.Fatalf("a stop reason out of range decoded as %d", got.Reason)
	}
	free := Status{Owner: -1}
	if got := decodeStatus(free.encode()); got != free {
		t.Fatalf("free: %+v", got)
	}
}

func TestSyncRecords(t *testing.T) {
	ids := [][24]byte{{1}, {2}, {3}}
	b, got, err := decodeSendSync(encodeSendSync(9, ids))
	if err != nil || b != 9 || len(got) != 3 || got[2] != ids[2] {
		t.Fatalf("sender record: %d %v %v", b, got, err)
	}
	if n, err := decodeRecvSync(encodeRecvSync(12)); err != nil || n != 12 {
		t.Fatalf("receiver record: %d %v", n, err)
	}
	bad := encodeSendSync(9, ids)
	bad[12] = 200
	if _, _, err := decodeSendSync(bad); !errors.Is(err, ErrSyncRecord) {
		t.Fatalf("bad count: %v", err)
	}
}

// TestHelloReset: a HELLO carries RESET CHANNEL's number in place of the
// in-doubt batch, with the reset flag; a reset to 0 or past MaxSeqNum, and
// unknown flags, are refused.
func TestHelloReset(t *testing.T) {
	b := helloReset(1000)
	f, err := NewReader(bytes.NewReader(b), 4096).Read()
	if err != nil {
		t.Fatal(err)
	}
	h, err := DecodeHello(f.Payload)
	if err != nil || h.Reset != 1000 || h.InDoubt != 0 {
		t.Fatalf("reset hello: %+v %v", h, err)
	}
	for name, n := range map[string]uint64{"zero": 0, "past MaxSeqNum": MaxSeqNum + 1} {
		p := append([]byte(nil), f.Payload...)
		binary.LittleEndian.PutUint64(p[160:], n)
		if _, err := DecodeHello(p); !errors.Is(err, ErrProtocol) {
			t.Errorf("reset to %s: %v", name, err)
		}
	}
	p := append([]byte(nil), f.Payload...)
	p[heFlags] |= 2
	if _, err := DecodeHello(p); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown flag: %v", err)
	}
}

// helloReset is a HELLO frame resetting to batch next.
func helloReset(next uint64) []byte {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Hello(Hello{Channel: "TO.R", QMgr: "QM1", Group: "QSG1", BatchSz: 50, MaxMsgL: 1 << 20, HBInt: 300, MinVer: 1, MaxVer: 1, InDoubt: 3, Reset: next})
	w.Flush()
	return b.Bytes()
}

// FuzzFrames feeds arbitrary bytes to the frame reader and every payload
// decoder: a malformed input is an error, never a panic.
func FuzzFrames(f *testing.F) {
	f.Add(sampleFrames())
	f.Add(helloReset(7))
	f.Add([]byte{'Q', 'C', ProtoVersion, FrameHello, 0, 0, 0, 0})
	f.Add([]byte{'Q', 'C', ProtoVersion, FrameClose, 6, 0, 0, 0, 1, 0, 0, 0, 9, 0})
	f.Add([]byte{'Q', 'C', ProtoVersion, FrameAuth, 40, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b), 64<<10)
		for i := 0; i < 64; i++ {
			fr, err := r.Read()
			if err != nil {
				return
			}
			DecodeHello(fr.Payload)
			DecodeHelloAck(fr.Payload)
			DecodeEndBatch(fr.Payload)
			DecodeConfirm(fr.Payload)
			DecodeClose(fr.Payload)
			DecodeChallenge(fr.Payload)
			DecodeAuth(fr.Payload)
			decodeSendSync(fr.Payload)
			decodeRecvSync(fr.Payload)
			if len(fr.Payload) >= recSize {
				decodeStatus(fr.Payload[:recSize])
			}
		}
	})
}

// TestReaderInPlaceAndLarge: a frame that fits in the read buffer is
// returned in place and stays valid until the next read; a larger one is
// copied; Buffered counts only what no frame returned yet; the end of the
// stream is io.EOF between frames and io.ErrUnexpectedEOF inside one.
func TestReaderInPlaceAndLarge(t *testing.T) {
	var b []byte
	sizes := []int{10, 300 << 10, 0, 70}
	for i, n := range sizes {
		b = header(b, FrameMsg, n)
		b = append(b, bytes.Repeat([]byte{byte('a' + i)}, n)...)
	}
	r := NewReader(bytes.NewReader(b), 1<<20)
	for i, n := range sizes {
		f, err := r.Read()
		if err != nil || f.Type != FrameMsg || len(f.Payload) != n || !bytes.Equal(f.Payload, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("frame %d: %v, type %d, %d bytes", i, err, f.Type, len(f.Payload))
		}
		if i == 0 && r.Buffered() != min(len(b), 256<<10)-frameHdrSize-n {
			t.Fatalf("after the first frame: %d buffered", r.Buffered())
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(b[:5]), 1<<20).Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut header: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(b[:frameHdrSize+4]), 1<<20).Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut payload: %v", err)
	}
	r = NewReader(bytes.NewReader(b[:frameHdrSize+10+frameHdrSize+1000]), 1<<20)
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut large payload: %v", err)
	}
}
