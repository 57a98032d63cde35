package rlog

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/vfs"
)

// segmentBytes returns the first segment of a log holding the given
// records, each written on its own.
func segmentBytes(t testing.TB, payloads ...[]byte) []byte {
	m := vfs.NewMem(11)
	var src Counter
	l, err := Open(Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range payloads {
		if err := l.Write(7, p); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	b, err := readAll(m, filepath.Join(testDir, segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzSegment feeds arbitrary bytes to the log's decoders as segment 1 of
// a log (and, split at a point the input chooses, as segments 1 and 2):
// neither the reader nor Open may panic; records the reader returns before
// an error must be whole; a log Open accepts must take and give back a
// new record after them, keeping every record a clean read found.
func FuzzSegment(f *testing.F) {
	valid := segmentBytes(f, []byte("first"), make([]byte, 300), []byte("third record"))
	f.Add(valid, uint16(0))
	torn := append([]byte(nil), valid...)
	torn[segHeaderSize+recHeaderSize+8+3] ^= 1
	f.Add(torn, uint16(0))
	f.Add(valid[:segHeaderSize+20], uint16(0))
	f.Add(append(append([]byte(nil), valid...), valid...), uint16(4096))
	// Segment 2 seals segment 1 after its first record (a failed write
	// left the other two): the reader and Open see one record.
	seal := make([]byte, 4096)
	encodeSegHeader(seal, 2, 4096, "", uint64(segHeaderSize+recSize(len("first"))))
	f.Add(append(append([]byte(nil), valid...), seal...), uint16(len(valid)))
	f.Add([]byte("QMRL"), uint16(0))
	f.Add(make([]byte, 4096), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if len(data) > 1<<16 {
			return
		}
		m := vfs.NewMem(12)
		m.MkdirAll(testDir)
		put := func(seq uint64, b []byte) {
			file, err := m.Create(filepath.Join(testDir, segName(seq)))
			if err != nil {
				t.Fatal(err)
			}
			file.WriteAt(b, 0)
			file.Sync()
			file.Close()
		}
		if s := int(split); s > 0 && s < len(data) {
			put(1, data[:s])
			put(2, data[s:])
		} else {
			put(1, data)
		}
		m.SyncDir(testDir)

		r, err := NewReader(m, testDir, 0)
		if err != nil {
			t.Fatal(err)
		}
		var before int
		var lastLRSN uint64
		clean := false
		for {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("reader: %v", err)
				}
				clean = err == io.EOF
				break
			}
			if rec.Type == 0 || len(rec.Payload) > len(data) {
				t.Fatalf("record type %d, %d bytes", rec.Type, len(rec.Payload))
			}
			before++
			lastLRSN = rec.LRSN
		}

		var src Counter
		l, err := Open(Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 4096})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v", err)
			}
			return
		}
		if err := l.Write(9, []byte("after")); err != nil {
			t.Fatalf("write: %v", err)
		}
		l.Close()
		r, err = NewReader(m, testDir, 0)
		if err != nil {
			t.Fatal(err)
		}
		var recs []Record
		for {
			rec, err := r.Next()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("reader after a write: %v", err)
				}
				break
			}
			rec.Payload = append([]byte(nil), rec.Payload...)
			recs = append(recs, rec)
		}
		if len(recs) == 0 || string(recs[len(recs)-1].Payload) != "after" || recs[len(recs)-1].LRSN <= lastLRSN {
			t.Fatalf("the record written after opening is not last (%d records)", len(recs))
		}
		if clean && len(recs) != before+1 {
			t.Fatalf("the reader read %d records, after opening and one write the log holds %d", before, len(recs))
		}
	})
}
