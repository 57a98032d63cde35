package smds

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
	mmap "github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// Read returns the body r names, in dst (grown as needed; the result may
// be a new slice). It is served from the read cache when the cache holds
// it; otherwise the run is read from the file, its header checked
// against r and its body against r's checksum, and the body cached. A
// run whose header or body does not match gives ErrDamaged, a run that
// holds another allocation now ErrStale (r was freed and its space
// reused), a run past the end of the file ErrTruncated: each names the
// data set file and the offset.
func (d *DataSet) Read(r Ref, dst []byte) ([]byte, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	var key string
	if d.cache != nil {
		key = d.cacheKey(r)
		if v, ok := d.cache.get(key); ok {
			return append(dst[:0], v...), nil
		}
	}
	body, err := d.readDisk(r, dst)
	if err != nil {
		return nil, err
	}
	if d.cache != nil {
		d.cache.set(key, append([]byte(nil), body...))
	}
	return body, nil
}

// ReadNoFill is Read without filling the cache on a miss: for a body read
// once before its run is freed (a destructive get), which would only push
// bodies still wanted out of the cache.
func (d *DataSet) ReadNoFill(r Ref, dst []byte) ([]byte, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	if d.cache != nil {
		if v, ok := d.cache.get(d.cacheKey(r)); ok {
			return append(dst[:0], v...), nil
		}
	}
	return d.readDisk(r, dst)
}

// ReadUncached is Read without the cache (neither looked up nor filled).
func (d *DataSet) ReadUncached(r Ref, dst []byte) ([]byte, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	return d.readDisk(r, dst)
}

func (d *DataSet) readDisk(r Ref, dst []byte) ([]byte, error) {
	var err error
	if gerr := guard(func() error { err = d.checkRef(r, "read"); return nil }); gerr != nil {
		return nil, gerr
	}
	if err != nil {
		return nil, err
	}
	n := int(r.Len)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	off := d.g.blockOff(r.Head)
	pad := d.g.blocksFor(n)*d.g.BlockSize - runHdrSize - n
	pb := d.pads.Get().(*[]byte)
	defer d.pads.Put(pb)
	var hdr [runHdrSize]byte
	if got, rerr := preadFull(int(d.f.Fd()), [][]byte{dst, (*pb)[:pad], hdr[:]}, off); rerr != nil {
		return nil, wrapErr("read", d.path, off+got, ErrIO, rerr)
	} else if got < int64(n+pad+runHdrSize) {
		return nil, newErr("read", d.path, off+got, ErrTruncated, "end of file in the run of %v (%d of %d bytes read)", r, got, n+pad+runHdrSize)
	}
	hoff := d.g.trailerOff(r.Head, n)
	if err := d.checkHeader(hdr[:], r, hoff, "read"); err != nil {
		return nil, d.staleOr(r, err)
	}
	if sum := xxhash.Sum64(dst); sum != r.Sum {
		return nil, d.staleOr(r, newErr("read", d.path, off, ErrDamaged, "body of %v: checksum %#x, want %#x", r, sum, r.Sum))
	}
	return dst, nil
}

// staleOr is err, unless the space map shows that r's run was freed: the
// bytes did not match because they belong to another allocation now, and
// the error is ErrStale.
func (d *DataSet) staleOr(r Ref, err error) error {
	var w uint64
	if gerr := guard(func() error { w = d.word(r.Head); return nil }); gerr != nil {
		return err
	}
	if w == mkWord(r.Gen, bkHead, uint32(d.g.blocksFor(int(r.Len)))) || wKind(w) == bkFreeing && wGen(w) == r.Gen {
		return err
	}
	return newErr("read", d.path, d.g.blockOff(r.Head), ErrStale, "%v: block %d is %s now", r, r.Head, wordString(w))
}

// preadFull reads into bufs from off until they are full or the file
// ends, and returns how many bytes it read.
func preadFull(fd int, bufs [][]byte, off int64) (int64, error) {
	var got int64
	for len(bufs) > 0 {
		k, err := unix.Preadv(fd, bufs, off+got)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if k == 0 {
			return got, nil
		}
		got += int64(k)
		for k > 0 && len(bufs) > 0 {
			if k >= len(bufs[0]) {
				k -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][k:]
				k = 0
			}
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return got, nil
}

// View returns the body r names as a slice of a read-only mapping of the
// data set (no copy), after checking its run header and checksum. The
// bytes stay valid until the data set is closed but change if the run is
// freed and reused: use a view only while holding the message (a get,
// not a browse). A fault on the mapping (a file truncated under it) is
// ErrFault.
func (d *DataSet) View(r Ref) (b []byte, err error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	err = guard(func() error {
		if err := d.checkRef(r, "view"); err != nil {
			return err
		}
		eb := uint32(d.g.ExtentBlocks)
		m, err := d.extentMap(int(r.Head / eb))
		if err != nil {
			return err
		}
		start := int64(r.Head%eb) * int64(d.g.BlockSize)
		off := d.g.blockOff(r.Head)
		h := start + int64(d.g.blocksFor(int(r.Len))*d.g.BlockSize) - runHdrSize
		if err := d.checkHeader(m[h:h+runHdrSize], r, d.g.trailerOff(r.Head, int(r.Len)), "view"); err != nil {
			return d.staleOr(r, err)
		}
		body := m[start : start+int64(r.Len)]
		if sum := xxhash.Sum64(body); sum != r.Sum {
			return d.staleOr(r, newErr("view", d.path, off, ErrDamaged, "body of %v: checksum %#x, want %#x", r, sum, r.Sum))
		}
		b = body
		return nil
	})
	return b, err
}

// extentMap maps extent e read-only, once.
func (d *DataSet) extentMap(e int) (mmap.MMap, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return nil, ErrClosed
	}
	if e < len(d.ext) && d.ext[e] != nil {
		return d.ext[e], nil
	}
	off := dsHeaderSize + int64(e)*d.g.extentBytes()
	st, err := d.f.Stat()
	if err != nil {
		return nil, osErr("view", d.path, err)
	}
	if st.Size() < off+d.g.extentBytes() {
		return nil, newErr("view", d.path, st.Size(), ErrTruncated, "file is %d bytes, extent %d ends at %d", st.Size(), e, off+d.g.extentBytes())
	}
	m, err := mmap.MapRegion(d.f, int(d.g.extentBytes()), mmap.RDONLY, 0, off)
	if err != nil {
		return nil, wrapErr("view", d.path, off, ErrIO, err)
	}
	for len(d.ext) <= e {
		d.ext = append(d.ext, nil)
	}
	d.ext[e] = m
	return m, nil
}

// cacheKey names r's body in the read cache: the data set, the run, its
// Seq and its checksum. Seq is never given to two runs of a data set, so
// a run freed and allocated again has another key: a cache never returns
// the body of one allocation for a reference to another. The checksum in
// the key makes that hold even for a Seq that repeated (a space map
// rebuilt with a clock gone back): a hit returns bytes whose checksum is
// the one the reference holds.
func (d *DataSet) cacheKey(r Ref) string {
	var k [32]byte
	le := binary.LittleEndian
	le.PutUint64(k[0:], d.g.ID)
	le.PutUint32(k[8:], r.Head)
	le.PutUint32(k[12:], r.Len)
	le.PutUint64(k[16:], r.Seq)
	le.PutUint64(k[24:], r.Sum)
	return string(k[:])
}
