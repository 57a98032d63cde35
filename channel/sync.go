package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SyncQueue is the shared synchronisation queue: one record per channel
// and side, found by correlation id (INDXTYPE CORRELID). Any member reads
// and writes it, so whichever member runs a channel's next instance
// resynchronises it with the partner.
const SyncQueue = "SYSTEM.QSG.CHANNEL.SYNCQ"

// Sync record kinds: the first byte of the correlation id, followed by the
// channel name (NUL padded).
const (
	syncRecv = 'R' // receiving side: the last batch committed
	syncSend = 'S' // sending side, lane 0: the batch sent and not yet confirmed
)

// numLanes is how many batches a sender has in flight, each on a lane of
// its own (a connection, so a unit of work): four keep both ends busy on
// loopback, where two left each side idle a third of the time, waiting
// for the other to be scheduled. Lane i's sync record is of kind 'S'+i.
const numLanes = 4

// The lanes beyond the first are named in the status entry, and the sync
// record kinds of MaxLanes+1 lanes stay below 'a'.
var (
	_ [MaxLanes - (numLanes - 1)]struct{}
	_ ['a' - (syncSend + MaxLanes + 1)]struct{}
)

// syncSendKind is lane i's sync record kind.
func syncSendKind(i int) byte { return syncSend + byte(i) }

// ErrSyncRecord is returned for a malformed sync record.
var ErrSyncRecord = errors.New("channel: malformed sync record")

// Sync record layouts (little-endian):
//
//	receiver: "QSR1" | 8 last committed batch id
//	sender:   "QSS1" | 8 in-doubt batch id | 4 count n | n x 24 message ids
//	          (the transmission queue's ids of the batch's messages)
const maxSyncIDs = 9999

func syncKey(kind byte, channel string) [24]byte {
	var k [24]byte
	k[0] = kind
	copy(k[1:], channel)
	return k
}

func encodeRecvSync(batch uint64) []byte {
	b := make([]byte, 12)
	copy(b, "QSR1")
	binary.LittleEndian.PutUint64(b[4:], batch)
	return b
}

func decodeRecvSync(b []byte) (uint64, error) {
	if len(b) != 12 || string(b[:4]) != "QSR1" {
		return 0, fmt.Errorf("%w: receiver record of %d bytes", ErrSyncRecord, len(b))
	}
	return binary.LittleEndian.Uint64(b[4:]), nil
}

func encodeSendSync(batch uint64, ids [][24]byte) []byte {
	b := make([]byte, 16, 16+24*len(ids))
	copy(b, "QSS1")
	binary.LittleEndian.PutUint64(b[4:], batch)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func decodeSendSync(b []byte) (uint64, [][24]byte, error) {
	if len(b) < 16 || string(b[:4]) != "QSS1" {
		return 0, nil, fmt.Errorf("%w: sender record of %d bytes", ErrSyncRecord, len(b))
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if n > maxSyncIDs || uint64(len(b)) != 16+24*uint64(n) {
		return 0, nil, fmt.Errorf("%w: sender record with %d ids in %d bytes", ErrSyncRecord, n, len(b))
	}
	ids := make([][24]byte, n)
	for i := range ids {
		copy(ids[i][:], b[16+24*i:])
	}
	return binary.LittleEndian.Uint64(b[4:]), ids, nil
}
