package logrec

import "testing"

// TestInputHashCoversWhatTheHandlerSees: Input.Hash, by which an
// INPUT_REF names its input, changes with every field a handler is given
// and with none of the log's own (LSN, Source, Choices), and moving a
// byte between two variable fields changes it too.
func TestInputHashCoversWhatTheHandlerSees(t *testing.T) {
	base := func() *Input {
		return &Input{LSN: 7, MsgID: [24]byte{1}, CorrelID: [24]byte{2}, Format: "MQSTR", Priority: 4, Persistent: true,
			Expiry: 11, PutTime: 12, ReplyToQ: "RQ", ReplyToQMgr: "RQM", Properties: []byte("p"), Body: []byte("body")}
	}
	h := base().Hash()
	changes := map[string]func(*Input){
		"MsgID":       func(in *Input) { in.MsgID[0] = 9 },
		"CorrelID":    func(in *Input) { in.CorrelID[23] = 9 },
		"Format":      func(in *Input) { in.Format = "MQHRF2" },
		"Priority":    func(in *Input) { in.Priority = 5 },
		"Persistent":  func(in *Input) { in.Persistent = false },
		"Expiry":      func(in *Input) { in.Expiry = 0 },
		"PutTime":     func(in *Input) { in.PutTime = 13 },
		"ReplyToQ":    func(in *Input) { in.ReplyToQ = "RQ2" },
		"ReplyToQMgr": func(in *Input) { in.ReplyToQMgr = "" },
		"Properties":  func(in *Input) { in.Properties = nil },
		"Body":        func(in *Input) { in.Body = []byte("bodY") },
		"a byte moved from ReplyToQ to ReplyToQMgr": func(in *Input) { in.ReplyToQ, in.ReplyToQMgr = "R", "QRQM" },
	}
	for name, change := range changes {
		in := base()
		change(in)
		if in.Hash() == h {
			t.Errorf("%s changed, the hash did not", name)
		}
	}
	same := base()
	same.LSN, same.Source, same.Choices = 99, Source{ID: 1, Gen: 1, Seq: 1}, []Choice{{Kind: 1, Data: []byte{1}}}
	if same.Hash() != h {
		t.Error("the hash changed with the LSN, source or choices")
	}
}
