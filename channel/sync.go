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

// Sync record key: a sync record's correlation id (syncKeySize bytes):
//
//	offset  size  constant  field
//	     0     1  skKind    kind: syncRecv, or the sender lane's kind
//	     1    23  skName    channel name, NUL padded
const (
	skKind      = 0
	skName      = 1
	syncKeySize = 24
)

// Receiver sync record (recvSyncSize bytes, little-endian):
//
//	offset  size  constant  field
//	     0     4  rsMagic   magic "QSR1"
//	     4     8  rsBatch   last committed batch id
const (
	rsMagic      = 0
	rsBatch      = 4
	recvSyncSize = 12
	recvMagic    = "QSR1"
)

// Sender sync record (sendSyncFixed bytes, then the ids; little-endian):
//
//	offset  size  constant  field
//	     0     4  ssMagic   magic "QSS1"
//	     4     8  ssBatch   in-doubt batch id
//	    12     4  ssCount   count n
//	    16     *  ssIDs     n x syncIDSize message ids (the transmission queue's ids of the batch's messages)
const (
	ssMagic       = 0
	ssBatch       = 4
	ssCount       = 12
	ssIDs         = sendSyncFixed
	sendSyncFixed = 16
	syncIDSize    = 24
	sendMagic     = "QSS1"
)

const maxSyncIDs = 9999

func syncKey(kind byte, channel string) [syncKeySize]byte {
	var k [syncKeySize]byte
	k[skKind] = kind
	copy(k[skName:], channel)
	return k
}

func encodeRecvSync(batch uint64) []byte {
	b := make([]byte, recvSyncSize)
	copy(b[rsMagic:], recvMagic)
	binary.LittleEndian.PutUint64(b[rsBatch:], batch)
	return b
}

func decodeRecvSync(b []byte) (uint64, error) {
	if len(b) != recvSyncSize || string(b[rsMagic:rsMagic+len(recvMagic)]) != recvMagic {
		return 0, fmt.Errorf("%w: receiver record of %d bytes", ErrSyncRecord, len(b))
	}
	return binary.LittleEndian.Uint64(b[rsBatch:]), nil
}

func encodeSendSync(batch uint64, ids [][syncIDSize]byte) []byte {
	b := make([]byte, sendSyncFixed, sendSyncFixed+syncIDSize*len(ids))
	copy(b[ssMagic:], sendMagic)
	binary.LittleEndian.PutUint64(b[ssBatch:], batch)
	binary.LittleEndian.PutUint32(b[ssCount:], uint32(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func decodeSendSync(b []byte) (uint64, [][syncIDSize]byte, error) {
	if len(b) < sendSyncFixed || string(b[ssMagic:ssMagic+len(sendMagic)]) != sendMagic {
		return 0, nil, fmt.Errorf("%w: sender record of %d bytes", ErrSyncRecord, len(b))
	}
	n := binary.LittleEndian.Uint32(b[ssCount:])
	if n > maxSyncIDs || uint64(len(b)) != sendSyncFixed+syncIDSize*uint64(n) {
		return 0, nil, fmt.Errorf("%w: sender record with %d ids in %d bytes", ErrSyncRecord, n, len(b))
	}
	ids := make([][syncIDSize]byte, n)
	for i := range ids {
		copy(ids[i][:], b[ssIDs+syncIDSize*i:])
	}
	return binary.LittleEndian.Uint64(b[ssBatch:]), ids, nil
}
