// Package mqsc parses and runs MQSC-style admin commands against a member
// of the group: DEFINE, ALTER, DELETE, CLEAR and DISPLAY of QLOCAL (and
// QUEUE), QSTATUS, CFSTRUCT, CFSTATUS, GROUP, CONN and QMGR; QREMOTE,
// CHANNEL and CHSTATUS, START and STOP CHANNEL and CHINIT, and RESET and
// RESOLVE CHANNEL (see package channel for what they do to a channel's
// sync records and status).
//
// Syntax follows MQSC: keywords and unquoted values are case-insensitive
// and folded to upper case; 'quoted' values keep their case (” is a
// quote); a line ending in + or - continues on the next; a line starting
// with * is a comment. Generic names end in *.
//
// A command that fails changes nothing: definitions change in one SQLite
// transaction that also creates, alters or deletes the queue in the CF, and
// is rolled back when that fails. Errors name the offending token.
//
// Results render as MQSC text (Text) or as one JSON object per result with
// the MQSC attribute names as keys (JSON).
package mqsc
