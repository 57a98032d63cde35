package mqsc

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// quotedKeys are the attributes whose values are free text, shown
// 'quoted' (a quote doubled) so that a parenthesis or a blank in them
// reads back as it was.
var quotedKeys = map[string]bool{"DESCR": true, "REASON": true, "CONFIGURE": true, "WRITE": true, "READ": true, "KEY": true}

// Text renders results as MQSC does: each object's attributes two a line,
// the second column at 40 characters, or further for the whole object when
// a value of the first is wider, so it stays aligned (writeAttrs).
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
// after the indent), or to one more than the widest first cell of the
// object, in characters (as text/tabwriter would; but a value is written
// byte for byte: no byte of it, a tab or a 0xff, is read as a control).
func writeAttrs(b *strings.Builder, attrs []KV) {
	cells := make([]string, len(attrs))
	for i, kv := range attrs {
		cells[i] = fmt.Sprintf("%s(%s)", kv.Key, attrText(kv))
	}
	width := 43
	for i := 0; i+1 < len(cells); i += 2 {
		width = max(width, 3+utf8.RuneCountInString(cells[i])+1)
	}
	for i := 0; i < len(cells); i += 2 {
		b.WriteString("   " + cells[i])
		if i+1 < len(cells) {
			b.WriteString(strings.Repeat(" ", width-3-utf8.RuneCountInString(cells[i])) + cells[i+1])
		}
		b.WriteByte('\n')
	}
}

// attrText is an attribute's value as DISPLAY shows it: free text quoted
// (a quote doubled), the rest as it is.
func attrText(kv KV) string {
	if x, ok := kv.Value.(string); ok {
		if quotedKeys[kv.Key] {
			return "'" + strings.ReplaceAll(x, "'", "''") + "'"
		}
		return x
	}
	return fmt.Sprint(kv.Value)
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
