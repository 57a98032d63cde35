package mqsc

import (
	"encoding/json"
	"fmt"
	"strings"
)

// quotedKeys are the attributes whose values are free text, shown
// 'quoted' (a quote doubled) so that a parenthesis or a blank in them
// reads back as it was.
var quotedKeys = map[string]bool{"DESCR": true, "REASON": true, "CONFIGURE": true, "WRITE": true, "READ": true, "KEY": true}

// Text renders results as MQSC does.
func Text(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Message != "" {
			b.WriteString(r.Message + "\n")
			continue
		}
		b.WriteString(r.Header + "\n")
		for i, kv := range r.Attrs {
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
			f := fmt.Sprintf("%s(%s)", kv.Key, v)
			if i%2 == 0 {
				b.WriteString("   " + fmt.Sprintf("%-40s", f))
			} else {
				b.WriteString(f + "\n")
			}
		}
		if len(r.Attrs)%2 == 1 {
			b.WriteString("\n")
		}
	}
	return b.String()
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
