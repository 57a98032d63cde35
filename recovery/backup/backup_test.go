package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/qmgr/qmgr/recovery/plog"
)

func rec(i int) plog.Record {
	return plog.Record{Type: plog.TypePut, Flags: plog.FlagCommitted, Structure: "APPL1", Queue: "Q", Key: uint64(100 + i),
		Priority: uint8(i % 10), Body: []byte(fmt.Sprintf("message %d", i)), Properties: []byte{}}
}

func TestWriteReadLatest(t *testing.T) {
	data := t.TempDir()
	if _, _, err := Latest(data, "APPL1", 0, nil); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("no backups: %v", err)
	}
	for _, start := range []uint64{10, 30, 20} {
		w, err := Create(data, "APPL1", start, start-5)
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(start) {
			if err := w.Add(&[]plog.Record{rec(i)}[0]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	info, recs, err := Latest(data, "APPL1", 0, nil)
	if err != nil || info.Start != 30 || info.ReplayFrom != 25 || len(recs) != 30 || string(recs[29].Body) != "message 29" {
		t.Fatalf("latest: %+v, %d records, %v", info, len(recs), err)
	}
	if _, _, err := Latest(data, "APPL1", 30, nil); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("latest after the newest: %v", err)
	}
	// A damaged newest backup is skipped.
	b, _ := os.ReadFile(info.Path)
	b[200] ^= 1
	os.WriteFile(info.Path, b, 0o644)
	var skipped []string
	info, recs, err = Latest(data, "APPL1", 0, func(p string, err error) { skipped = append(skipped, p) })
	if err != nil || info.Start != 20 || len(recs) != 20 || len(skipped) != 1 {
		t.Fatalf("latest after damage: %+v, %d records, %v, skipped %v", info, len(recs), err, skipped)
	}
	// An aborted backup leaves nothing.
	w, _ := Create(data, "APPL1", 40, 40)
	w.Add(&[]plog.Record{rec(1)}[0])
	w.Abort()
	if list, _ := List(data, "APPL1"); len(list) != 3 {
		t.Fatalf("%d backups after an abort", len(list))
	}
}

// FuzzDecode: Decode never panics, and what it accepts has whole records.
func FuzzDecode(f *testing.F) {
	data := f.TempDir()
	w, _ := Create(data, "APPL1", 7, 3)
	for i := range 3 {
		w.Add(&[]plog.Record{rec(i)}[0])
	}
	info, err := w.Commit()
	if err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(info.Path)
	f.Add(good)
	f.Add(good[:len(good)-9])
	f.Add([]byte("QMBK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, recs, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error without ErrCorrupt: %v", err)
			}
			return
		}
		if uint64(len(recs)) != info.Messages {
			t.Fatalf("%d records, %d counted", len(recs), info.Messages)
		}
		for _, r := range recs {
			if r.Type != plog.TypePut || r.Key == 0 {
				t.Fatalf("record %+v", r)
			}
		}
	})
}

// TestPlaces: a backup keeps places (records of puts not committed, with
// no body) apart from its messages; a place with a body is refused, and a
// version 1 backup holding a place is damaged.
func TestPlaces(t *testing.T) {
	data := t.TempDir()
	w, err := Create(data, "APPL1", 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	place := plog.Record{Type: plog.TypePut, Structure: "APPL1", Queue: "Q", Key: 7}
	for _, r := range []plog.Record{rec(0), place, rec(1)} {
		if err := w.Add(&r); err != nil {
			t.Fatal(err)
		}
	}
	bad := place
	bad.Body = []byte("x")
	if err := w.Add(&bad); err == nil {
		t.Fatal("a place with a body was added")
	}
	info, err := w.Commit()
	if err != nil || info.Messages != 2 || info.Places != 1 {
		t.Fatalf("commit: %+v %v", info, err)
	}
	info, recs, err := Read(info.Path)
	if err != nil || info.Messages != 2 || info.Places != 1 || len(recs) != 3 || recs[1].Committed() || recs[1].Key != 7 {
		t.Fatalf("read: %+v, %d records, %v", info, len(recs), err)
	}
	// The same bytes labelled version 1 (hash fixed up) are damaged.
	b, _ := os.ReadFile(info.Path)
	b[4] = 1
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
	if _, _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 1 with a place: %v", err)
	}
}
