// Package plog defines what a member logs about persistent messages: the
// payloads of its recovery log records (package rlog carries them) and
// their decoding, which never panics on bytes read back from a disk.
//
// A persistent message has a key, a number unique in the group for ever:
// connections draw blocks of keys from the group's LRSN counter, which
// the logs keep above every LRSN they hold, so keys never repeat even when
// the CF is created anew. The key is stored with the message in the CF
// (lockfree.Message.Key), so a fuzzy backup carries it and a replayed put
// or get finds its message by it. A unit of work is named by a key drawn
// the same way.
//
// # Records
//
// The record type is the rlog record type. Every payload starts with the
// unit of work (u64 key, 0 for none) and a flags byte (bit 0: committed
// by itself, a put or get outside syncpoint: no commit record follows;
// bit 1, puts only: offloaded, the body is the 32-byte reference to the
// body in a shared message data set, written and synced first).
// Strings are a u8 length then the bytes; byte strings a u32 length then
// the bytes; integers little-endian.
//
//	Put (1):     uow u64, flags u8, structure str, queue str, key u64,
//	             msgid [24], correlid [24], format [8], priority u8,
//	             put time i64, expiry i64, backout count u32,
//	             reply-to queue str, reply-to qmgr str,
//	             properties bytes, body bytes
//	Get (2):     uow u64, flags u8, structure str, queue str, key u64
//	Commit (3):  uow u64, flags u8
//	Backout (4): uow u64, flags u8
//	Clear (5):   uow u64 (0), flags u8 (committed), structure str, queue str
//	             (CLEAR QLOCAL: every message of the queue committed
//	             before it goes)
//
// Payloads are sequences of variable-length fields, so they have no offset
// constants and no table: the grammar above is the layout, and
// TestEncodingIsTheDocumentedOne builds each record's bytes from it field
// by field and compares them with the encoder's (records carry no format
// version, so a change of encoding must fail a test).
//
// Replay applies a unit of work's puts and gets when it meets its commit
// record, and a put or get flagged committed at once; it drops units of
// work that end in a backout record or never end.
package plog
