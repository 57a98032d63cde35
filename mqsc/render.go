package mqsc

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
)

// quotedKeys are the attributes whose values are free text, shown
// 'quoted' (a quote doubled) so that a parenthesis or a blank in them
// reads back as it was.
var quotedKeys = map[string]bool{"DESCR": true, "REASON": true, "CONFIGURE": true, "WRITE": true, "READ": true, "KEY": true}

// Text renders results as MQSC does: each object's attributes two a line,
// the second column at 40 characters, or further for the whole object when
// a value of the first is wider (text/tabwriter), so it stays aligned.
func Text(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Message != "" {
			b.WriteString(r.Message + "\n")
			continue
		}
		b.WriteString(r.Header + "\n")
		writeAttrs(&b, r.Attrs)
	}
	return b.String()
}

// writeAttrs writes an object's attributes in two aligned columns: a
// first cell is three blanks and the attribute, padded to 43 (MQSC's 40
// after the indent).
func writeAttrs(b *strings.Builder, attrs []KV) {
	tw := tabwriter.NewWriter(b, 43, 0, 1, ' ', tabwriter.StripEscape)
	for i, kv := range attrs {
		var v string
		switch x := kv.Value.(type) {
		case string:
			if quotedKeys[kv.Key] {
				v = "'" + strings.ReplaceAll(x, "'", "''") + "'"
			} else {
				v = x
			}
		default:
			v = fmt.Sprint(x)
		}
		// Escaped: a tab in a value is text, not the end of a cell.
		f := "\xff" + fmt.Sprintf("%s(%s)", kv.Key, v) + "\xff" // tabwriter.Escape
		switch {
		case i%2 == 1:
			fmt.Fprintf(tw, "%s\n", f)
		case i == len(attrs)-1:
			fmt.Fprintf(tw, "   %s\n", f) // alone on its line: no padding
		default:
			fmt.Fprintf(tw, "   %s\t", f)
		}
	}
	tw.Flush()
}

// JSON renders each result as one JSON object, keys the MQSC attribute
// names ({"QUEUE":"IN","CURDEPTH":5}); a message is {"MESSAGE":"..."}.
func JSON(rs []Result) []string {
	var out []string
	for _, r := range rs {
		var b strings.Builder
		b.WriteByte('{')
		if r.Message != "" {
			m, _ := json.Marshal(r.Message)
			b.WriteString(`"MESSAGE":` + string(m))
		}
		for i, kv := range r.Attrs {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(kv.Key)
			v, _ := json.Marshal(kv.Value)
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
		out = append(out, b.String())
	}
	return out
}
