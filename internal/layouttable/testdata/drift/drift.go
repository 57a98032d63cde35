package drift

// Record layout:
//
//	offset  size  constant  field
//	     0     8  dState    state word
//	     8     8  dLen      length (the constant says 12)
//	    20     4  dGone     a row whose constant was removed
//	    24     *  dData     variable, but not last
//	    24     8  dTail     tail
const (
	dState = 0
	dLen   = 12
	dData  = 24
	dTail  = 24
	dNew   = 40 // a field without a row
	dSize  = 40
)

// Free layout (one row, and its size constant is missing):
//
//	0     8  fA        a
const fA = 0

// Elsewhere: the table is not attached to its constants.
//
// Loose layout:
//
//	     0     8  lA        a

const lA = 0
