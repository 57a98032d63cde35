package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/vfs"
)

// Sentinel errors; every error from this package wraps one of them.
var (
	ErrCorrupt  = errors.New("backup: corrupt")
	ErrNoBackup = errors.New("backup: no backup")
)

const (
	magic       = "QMBK"
	version     = 2 // 2: records of uncommitted puts (places); 1 is read too
	headerSize  = 128
	trailerSize = 24
	suffix      = ".bak"
)

// Backup file header (headerSize bytes, little-endian; the records follow,
// each a u32 payload length then a plog put record, then the trailer):
//
//	offset  size  constant      field
//	     0     4  bhMagic       magic "QMBK"
//	     4     2  bhVersion     version (2; 1 is read too)
//	     6     2  -             zero
//	     8     8  bhStart       start LRSN
//	    16     8  bhTaken       time taken, Unix ns
//	    24     1  bhNameLen     structure name length
//	    25    48  bhName        structure name
//	    73     7  -             zero
//	    80     8  bhReplayFrom  replay-from LRSN (at most the start: the oldest unit of work in flight)
//	    88    40  -             zero
const (
	bhMagic      = 0
	bhVersion    = 4
	bhStart      = 8
	bhTaken      = 16
	bhNameLen    = 24
	bhName       = 25
	bhReplayFrom = 80
	maxName      = 48 // bytes at bhName
)

// Backup file trailer (trailerSize bytes, after the last record):
//
//	offset  size  constant  field
//	     0     4  btEnd     0: no more records (where a record's length would be)
//	     4     4  -         zero
//	     8     8  btCount   record count
//	    16     8  btSum     xxhash64 of everything before it
const (
	btEnd   = 0
	btCount = 8
	btSum   = 16
)

// Info describes a backup.
type Info struct {
	Path      string
	Structure string
	Start     uint64 // start LRSN: every logged operation below it is in the backup
	// ReplayFrom is where replay must start reading the logs (at most
	// Start): units of work in flight when the backup started have
	// records from here on.
	ReplayFrom uint64
	Taken      time.Time
	Messages   uint64 // committed messages
	// Places counts the puts the scan found not yet visible (uncommitted,
	// or half way through): each record keeps the place its message takes
	// if it becomes visible.
	Places uint64
	Size   int64
}

// Dir is where the backups of structure live under data directory data.
func Dir(data, structure string) string { return filepath.Join(data, "backup", structure) }

// Writer writes one backup.
type Writer struct {
	f      *os.File
	path   string
	tmp    string
	h      *xxhash.Digest
	n      uint64 // records
	places uint64
	buf    []byte
	size   int64
	start  uint64
	from   uint64
	taken  time.Time
	name   string
}

// Create starts the backup of structure, whose start LRSN is start, in
// data directory data.
func Create(data, structure string, start, replayFrom uint64) (*Writer, error) {
	if len(structure) > 48 || structure == "" {
		return nil, fmt.Errorf("backup: structure name %q", structure)
	}
	dir := Dir(data, structure)
	if err := vfs.MkdirDurable(vfs.OS(), dir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%016x%s", start, suffix))
	tmp := path + ".tmp"
	f, _, err := ownedfs.OpenOrCreate(tmp, os.O_RDWR) // 0660; a crashed backup's file is emptied
	if err == nil {
		if err = f.Truncate(0); err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	w := &Writer{f: f, path: path, tmp: tmp, h: xxhash.New(), start: start, from: replayFrom, taken: time.Now(), name: structure}
	hdr := make([]byte, headerSize)
	copy(hdr[bhMagic:], magic)
	binary.LittleEndian.PutUint16(hdr[bhVersion:], version)
	binary.LittleEndian.PutUint64(hdr[bhStart:], start)
	binary.LittleEndian.PutUint64(hdr[bhTaken:], uint64(w.taken.UnixNano()))
	hdr[bhNameLen] = byte(len(structure))
	copy(hdr[bhName:bhName+maxName], structure)
	binary.LittleEndian.PutUint64(hdr[bhReplayFrom:], replayFrom)
	w.buf = append(w.buf, hdr...)
	return w, nil
}

// Add adds a message: a put record flagged committed, or one not flagged
// committed, with no properties or body, for a put the scan found not yet
// visible (the place its message takes if it becomes visible).
func (w *Writer) Add(r *plog.Record) error {
	if r.Type != plog.TypePut || !r.Committed() && (len(r.Body) > 0 || len(r.Properties) > 0) {
		return fmt.Errorf("backup: add %v record of key %d (flags %#x, %d body bytes)", r.Type, r.Key, r.Flags, len(r.Body))
	}
	if !r.Committed() {
		w.places++
	}
	at := len(w.buf)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, 0)
	w.buf = plog.Append(w.buf, r)
	binary.LittleEndian.PutUint32(w.buf[at:], uint32(len(w.buf)-at-4))
	w.n++
	if len(w.buf) >= 1<<20 {
		return w.flush()
	}
	return nil
}

func (w *Writer) flush() error {
	w.h.Write(w.buf)
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	w.buf = w.buf[:0]
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", w.tmp, err)
	}
	return nil
}

// Commit finishes the backup: after it returns the backup is durable
// under its final name.
func (w *Writer) Commit() (Info, error) {
	// The trailer (btEnd, zero, btCount, then btSum once the rest is
	// hashed).
	w.buf = binary.LittleEndian.AppendUint32(w.buf, 0)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, 0)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, w.n)
	if err := w.flush(); err != nil {
		w.Abort()
		return Info{}, err
	}
	var sum [8]byte
	binary.LittleEndian.PutUint64(sum[:], w.h.Sum64())
	n, err := w.f.Write(sum[:])
	w.size += int64(n)
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp, w.path)
	}
	if err == nil {
		err = vfs.SyncParent(vfs.OS(), w.path) // the new name survives a power cut
	}
	if err != nil {
		os.Remove(w.tmp)
		return Info{}, fmt.Errorf("backup: finish %s: %w", w.path, err)
	}
	return Info{Path: w.path, Structure: w.name, Start: w.start, ReplayFrom: w.from, Taken: w.taken, Messages: w.n - w.places, Places: w.places, Size: w.size}, nil
}

// Abort drops an unfinished backup.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.tmp)
}

// Decode checks a whole backup file's bytes and returns its description
// and messages. It never panics; damage is ErrCorrupt.
func Decode(b []byte) (Info, []plog.Record, error) {
	var info Info
	if len(b) < headerSize+trailerSize {
		return info, nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if m := b[bhMagic : bhMagic+len(magic)]; string(m) != magic {
		return info, nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, m)
	}
	sumAt := len(b) - (trailerSize - btSum)
	body, sum := b[:sumAt], binary.LittleEndian.Uint64(b[sumAt:])
	if xxhash.Sum64(body) != sum {
		return info, nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	v := binary.LittleEndian.Uint16(b[bhVersion:])
	if v != version && v != 1 {
		return info, nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	info.Start = binary.LittleEndian.Uint64(b[bhStart:])
	info.Taken = time.Unix(0, int64(binary.LittleEndian.Uint64(b[bhTaken:])))
	if n := int(b[bhNameLen]); n == 0 || n > maxName {
		return info, nil, fmt.Errorf("%w: structure name length %d", ErrCorrupt, n)
	} else {
		info.Structure = string(b[bhName : bhName+n])
	}
	info.Size = int64(len(b))
	info.ReplayFrom = binary.LittleEndian.Uint64(b[bhReplayFrom:])
	if info.ReplayFrom > info.Start {
		return info, nil, fmt.Errorf("%w: replay from %d after the start %d", ErrCorrupt, info.ReplayFrom, info.Start)
	}
	var recs []plog.Record
	p := headerSize
	for {
		if p+4 > len(body) {
			return info, nil, fmt.Errorf("%w: no trailer", ErrCorrupt)
		}
		n := int(binary.LittleEndian.Uint32(body[p:]))
		if n == 0 {
			break
		}
		if n > len(body)-p-4 {
			return info, nil, fmt.Errorf("%w: record of %d bytes at %d", ErrCorrupt, n, p)
		}
		r, err := plog.Decode(plog.TypePut, body[p+4:p+4+n])
		if err != nil {
			return info, nil, fmt.Errorf("%w: record at %d: %w", ErrCorrupt, p, err)
		}
		if r.Structure != info.Structure {
			return info, nil, fmt.Errorf("%w: record of structure %q in a backup of %q", ErrCorrupt, r.Structure, info.Structure)
		}
		if !r.Committed() {
			if v == 1 || len(r.Body) > 0 || len(r.Properties) > 0 {
				return info, nil, fmt.Errorf("%w: record at %d: a put not committed, with %d body bytes, in a version %d backup",
					ErrCorrupt, p, len(r.Body), v)
			}
			info.Places++
		}
		recs = append(recs, r)
		p += 4 + n
	}
	if len(body)-p != btSum {
		return info, nil, fmt.Errorf("%w: %d bytes after the records", ErrCorrupt, len(body)-p)
	}
	if n := binary.LittleEndian.Uint64(body[p+btCount:]); n != uint64(len(recs)) {
		return info, nil, fmt.Errorf("%w: trailer counts %d records, %d read", ErrCorrupt, n, len(recs))
	}
	info.Messages = uint64(len(recs)) - info.Places
	return info, recs, nil
}

// List returns the backups of structure, newest (highest start) first,
// without reading them.
func List(data, structure string) ([]Info, error) {
	dir := Dir(data, structure)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var out []Info
	for _, e := range ents {
		hex, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok || len(hex) != 16 {
			continue
		}
		start, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		fi, _ := e.Info()
		var size int64
		var taken time.Time
		if fi != nil {
			size, taken = fi.Size(), fi.ModTime()
		}
		out = append(out, Info{Path: filepath.Join(dir, e.Name()), Structure: structure, Start: start, Size: size, Taken: taken})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start > out[j].Start })
	return out, nil
}

// Latest reads the newest backup of structure that is whole and starts
// after LRSN after, skipping (and reporting through skip) damaged ones.
// ErrNoBackup when there is none.
func Latest(data, structure string, after uint64, skip func(path string, err error)) (Info, []plog.Record, error) {
	list, err := List(data, structure)
	if err != nil {
		return Info{}, nil, err
	}
	for _, b := range list {
		if b.Start <= after {
			break // List is newest first
		}
		info, recs, err := Read(b.Path)
		if err == nil {
			return info, recs, nil
		}
		if skip != nil {
			skip(b.Path, err)
		}
	}
	return Info{}, nil, fmt.Errorf("%w of structure %s", ErrNoBackup, structure)
}

// Read reads and checks one backup file.
func Read(path string) (Info, []plog.Record, error) {
	f, err := ownedfs.Open(path, os.O_RDONLY)
	if err != nil {
		return Info{}, nil, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return Info{}, nil, fmt.Errorf("backup: read %s: %w", path, err)
	}
	info, recs, err := Decode(b)
	if err != nil {
		return info, nil, fmt.Errorf("%s: %w", path, err)
	}
	info.Path = path
	return info, recs, nil
}
