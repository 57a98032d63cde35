package good

import "os"

const line = 64

var _ = os.Getpid

// Record layout (rSize bytes):
//
//	offset  size  constant  field
//	     0     8  rState    state word
//	     8     4  rLen      length
//	    12     4  -         unused
//	    16    48  rName     name, continued
//	                        on this line
//	    64     *  rData     the rest
const (
	rState = 0
	rLen   = 8
	rName  = rLen + 8
	rData  = line
	rSize  = 1 * line
	rFlag  = 1 // a flag bit, not a field
	record = 2 // not a field: no word boundary after the prefix
)
