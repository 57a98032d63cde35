package qm

import "testing"

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"mqsc":"DISPLAY QLOCAL(*)"}`))
	f.Add([]byte(`{"mqsc":""}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"mqsc":123}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err == nil && r.MQSC == "" {
			t.Fatal("empty request accepted")
		}
	})
}
