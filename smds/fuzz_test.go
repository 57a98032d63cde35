package smds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// Fuzz targets for every decoder of bytes read from disk or shared
// memory: the data set header, the space map header, the run header, an
// encoded reference, and the space map's words and owner slots. None may
// panic, whatever the bytes; what they accept must round-trip.

func seedGeometry() Geometry {
	return Geometry{ID: 0x1234, BlockSize: 4096, ExtentBlocks: 64, MaxExtents: 8, Created: 99, Structure: "APPL1", Member: "QM1"}
}

func FuzzDecodeDSHeader(f *testing.F) {
	good := encodeDSHeader(seedGeometry())
	f.Add(good)
	f.Add(good[:dshUsed-1])
	f.Add([]byte{})
	bad := bytes.Clone(good)
	bad[dshBlockSize] = 3
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeDSHeader(b)
		if err != nil {
			return
		}
		if err := g.validate(); err != nil {
			t.Fatalf("accepted an invalid geometry %+v: %v", g, err)
		}
		if !bytes.Equal(encodeDSHeader(g)[:dshUsed], b[:dshUsed]) {
			// Only bytes the decoder ignores may differ: names past a NUL.
			g2, err := decodeDSHeader(encodeDSHeader(g))
			if err != nil || g2 != g {
				t.Fatalf("round trip: %+v -> %+v, %v", g, g2, err)
			}
		}
	})
}

func FuzzDecodeMapHeader(f *testing.F) {
	good := encodeMapHeader(mapParams{Geometry: seedGeometry(), Owners: 16, Epoch: 7})
	f.Add(good)
	f.Add(good[:10])
	bad := bytes.Clone(good)
	bad[mhOwners] = 0
	f.Add(bad)
	f.Add(oldMapHeader(good)) // layout version 1: ErrVersion
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeMapHeader(b)
		if err != nil {
			return
		}
		if p.Owners < 1 || p.Owners > maxOwners {
			t.Fatalf("accepted %d owners", p.Owners)
		}
		if !bytes.Equal(encodeMapHeader(p), b[:mhChecksum+8]) {
			t.Fatalf("round trip of %+v differs", p)
		}
	})
}

func FuzzDecodeRunHeader(f *testing.F) {
	var good [runHdrSize]byte
	encodeRunHeader(good[:], runHeader{DataSet: 5, Head: 9, Gen: 3, Seq: 77, Len: 1000, Sum: 42})
	f.Add(good[:])
	f.Add(good[:20])
	f.Add(make([]byte, runHdrSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeRunHeader(b)
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error %v is neither ErrDamaged nor ErrTruncated", err)
			}
			return
		}
		var again [runHdrSize]byte
		encodeRunHeader(again[:], h)
		if !bytes.Equal(again[:rhChecksum], b[:rhChecksum]) && b[48] == 0 {
			t.Fatalf("round trip of %+v differs", h)
		}
	})
}

func FuzzDecodeRef(f *testing.F) {
	var good [RefSize]byte
	Ref{DataSet: 1, Head: 2, Len: 3, Gen: 4, Seq: 5, Sum: 6}.Encode(good[:])
	f.Add(good[:])
	f.Add(good[:RefSize-1])
	f.Add(make([]byte, RefSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRef(b)
		if err != nil {
			return
		}
		var again [RefSize]byte
		r.Encode(again[:])
		if !bytes.Equal(again[:], b[:RefSize]) {
			t.Fatalf("round trip of %v differs", r)
		}
	})
}

// FuzzSpaceMap writes the fuzzer's bytes over the space map's block
// words and owner slots, then runs everything that reads them: the
// checker, Stats, RepairDead, an allocation, a free and reads of the
// references the bytes name. Damage must give errors or problems, never a
// panic, a fault or a loop.
func FuzzSpaceMap(f *testing.F) {
	dir := f.TempDir()
	opts := testOpts(dir)
	opts.MaxExtents = 2
	d, err := Create(opts)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	o, err := d.Register()
	if err != nil {
		f.Fatal(err)
	}
	r, _ := o.Put(body(1, 9000), false)
	o.Published()
	o.Close()
	snapshot := func() []byte {
		out := make([]byte, 0, 2048)
		for b := uint32(0); b < 128; b++ {
			out = binary.LittleEndian.AppendUint64(out, d.word(b))
		}
		return out
	}
	f.Add(snapshot(), []byte{})
	f.Add([]byte{0, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0}, []byte{1, 0, 0, 0, 0, 1, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 1024), bytes.Repeat([]byte{0xff}, 256))
	words, owners := d.l.words, d.l.owners
	f.Fuzz(func(t *testing.T, w []byte, own []byte) {
		total := d.g.totalBlocks() * 8
		for i := uint64(0); i < total; i += 8 {
			var v uint64
			if i+8 <= uint64(len(w)) {
				v = binary.LittleEndian.Uint64(w[i:])
			}
			d.store(words+i, v)
		}
		for i := uint64(0); i < uint64(d.p.Owners)*ownerSize; i += 8 {
			var v uint64
			if i+8 <= uint64(len(own)) {
				v = binary.LittleEndian.Uint64(own[i:])
			}
			d.store(owners+i, v)
		}
		d.store(mhExtents, uint64(len(w)%4))
		d.store(mhHand, uint64(len(own)))
		refs := []Ref{r}
		for i := 0; i+RefSize <= len(w) && i < 4*RefSize; i += RefSize {
			if x, err := DecodeRef(w[i:]); err == nil {
				refs = append(refs, x)
			}
		}
		d.Check(refs, CheckOptions{})
		d.Stats()
		d.RepairDead(func(Ref) bool { return len(own)%2 == 0 })
		if o, err := d.Register(); err == nil {
			if nr, err := o.Put(body(2, len(w)%20000), false); err == nil {
				o.Published()
				o.Free(nr)
			}
			for _, x := range refs {
				o.Free(x)
			}
			o.Close()
		}
		for _, x := range refs {
			d.ReadUncached(x, nil)
			d.View(x)
		}
	})
}
