// Package layouttable checks the byte layouts the project documents as
// tables against the named offset constants they describe, so that a
// documented layout cannot drift from the code.
//
// Every byte layout (shared memory records, file and log record headers,
// wire frames) is documented as a table in the doc comment of the const
// declaration that names its offsets, one row per field:
//
//	// Title line naming the record (Layout.Title matches it).
//	//
//	//	offset  size  constant   field
//	//	     0     8  xState     what the field holds, who writes it
//	//	     8     4  xLen       ...
//	//	    12     4  -          unused
//	//	    16     *  xData      variable part (only as the last row)
//	const (
//		xState = 0
//		...
//
// A row is a comment line "//", a tab, then offset and size in decimal,
// then the constant's name ("-" for unused bytes), then free text; a size
// of "*" marks a variable-length tail and may only end the table. Lines
// between rows that do not have this shape (a header, a continuation of
// the previous row's text) are skipped.
//
// Check reports every mismatch, not only the first:
//
//   - the table is missing, or is not the doc comment of a const
//     declaration, or a row's constant is not declared there;
//   - rows are not contiguous from offset 0 (a gap or an overlap);
//   - a row's offset is not its constant's value;
//   - the rows do not end at the record's size (Layout.SizeName: the
//     fixed part's size when the table ends with a "*" row);
//   - a constant of the file with the layout's prefix (followed by a
//     capital letter or a digit) has no row.
//
// CheckTree checks every table of a module, whether a test names it or
// not: its rows (contiguous, each at its constant's value), and that no
// table sits anywhere but directly above its constants (a copy in a
// package doc would drift unchecked).
//
// Constant values come from type-checking the package's non-test source
// files (go/types), so they are the values the compiler uses. Imports are
// not resolved: a constant used in a table must not depend on another
// package's constants.
//
// The package is meant for tests (Verify takes a testing.TB); it is an
// ordinary package so that every package's test uses the same checker.
package layouttable
