package httpd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/qm"
)

// displays are the DISPLAY commands /api/display/{object} runs: a fixed
// list, read-only; the answer is the mqsc package's JSON of each object.
var displays = map[string]string{
	"qlocal":   "DISPLAY QLOCAL(*) ALL",
	"qremote":  "DISPLAY QREMOTE(*) ALL",
	"qstatus":  "DISPLAY QSTATUS(*)",
	"cfstruct": "DISPLAY CFSTRUCT(*) ALL",
	"cfstatus": "DISPLAY CFSTATUS(*)",
	"backups":  "DISPLAY CFSTATUS(*) TYPE(BACKUP)",
	"channel":  "DISPLAY CHANNEL(*) ALL",
	"chstatus": "DISPLAY CHSTATUS(*) ALL",
	"qmgr":     "DISPLAY QMGR ALL",
	"group":    "DISPLAY GROUP",
	"conn":     "DISPLAY CONN(*)",
}

// Display is the answer of /api/display/{object} and of an action.
type Display struct {
	Member  string            `json:"member"`
	Command string            `json:"command"`
	Objects []json.RawMessage `json:"objects"`         // one per object, keys the MQSC attribute names
	Text    string            `json:"text,omitempty"`  // an action's MQSC message
	Error   string            `json:"error,omitempty"` // why the command failed
}

// MemberInfo is the answer of /api/member.
type MemberInfo struct {
	Member  string `json:"member"`
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason,omitempty"` // why not ready
	Actions bool   `json:"actions"`          // a token allows actions
}

// Recoveries is the answer of /api/recoveries.
type Recoveries struct {
	Member     string            `json:"member"`
	Recoveries []qm.PeerRecovery `json:"recoveries"`
}

// apiError is the body of an error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"httpd: encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, a...)})
}

// member is the source, or nil after a 503 answer (the member is
// starting).
func (s *Server) member(w http.ResponseWriter) Source {
	src := s.source()
	if src == nil {
		writeError(w, http.StatusServiceUnavailable, "the member is starting")
	}
	return src
}

func (s *Server) apiMember(w http.ResponseWriter, r *http.Request) {
	src := s.member(w)
	if src == nil {
		return
	}
	info := MemberInfo{Member: src.Name(), Ready: true, Actions: s.cfg.Token != ""}
	if err := src.Ready(); err != nil {
		info.Ready, info.Reason = false, err.Error()
	}
	writeJSON(w, http.StatusOK, info)
}

// apiStatus is the group's status: the JSON of `qmgr status --json`.
func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	src := s.member(w)
	if src == nil {
		return
	}
	rep, err := src.Status()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "status: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) apiDisplay(w http.ResponseWriter, r *http.Request) {
	cmd, ok := displays[r.PathValue("object")]
	if !ok {
		writeError(w, http.StatusNotFound, "no display %q", r.PathValue("object"))
		return
	}
	src := s.member(w)
	if src == nil {
		return
	}
	s.exec(w, r, src, cmd)
}

// exec runs cmd on the member and answers with its objects (409 when it
// fails, 503 when the member is not ready or another request's command
// ran for longer than CommandWait).
func (s *Server) exec(w http.ResponseWriter, r *http.Request, src Source, cmd string) {
	t := time.NewTimer(s.cfg.CommandWait)
	defer t.Stop()
	select {
	case s.cmd <- struct{}{}:
		defer func() { <-s.cmd }()
	case <-t.C:
		writeError(w, http.StatusServiceUnavailable, "busy: another request's command has run for %v", s.cfg.CommandWait)
		return
	case <-r.Context().Done():
		return
	}
	resp := src.Exec(cmd)
	d := Display{Member: resp.Member, Command: cmd, Objects: resp.Objects, Text: resp.Text, Error: resp.Error}
	if d.Objects == nil {
		d.Objects = []json.RawMessage{}
	}
	code := http.StatusOK
	switch {
	case resp.OK:
	case src.Ready() != nil:
		code = http.StatusServiceUnavailable
	default:
		code = http.StatusConflict
	}
	writeJSON(w, code, d)
}

func (s *Server) apiRecoveries(w http.ResponseWriter, r *http.Request) {
	src := s.member(w)
	if src == nil {
		return
	}
	rs := src.PeerRecoveries()
	if rs == nil {
		rs = []qm.PeerRecovery{}
	}
	writeJSON(w, http.StatusOK, Recoveries{Member: src.Name(), Recoveries: rs})
}

// apiChannelAction starts or stops a channel (START/STOP CHANNEL); only
// with the token (authorized).
func (s *Server) apiChannelAction(w http.ResponseWriter, r *http.Request) {
	name, verb := r.PathValue("name"), r.PathValue("verb")
	if verb != "start" && verb != "stop" {
		writeError(w, http.StatusNotFound, "no action %q on a channel (start or stop)", verb)
		return
	}
	if !defs.ValidName(name) {
		writeError(w, http.StatusBadRequest, "%q is not a channel name", name)
		return
	}
	src := s.member(w)
	if src == nil {
		return
	}
	cmd := "START CHANNEL(" + name + ")"
	if verb == "stop" {
		cmd = "STOP CHANNEL(" + name + ")"
	}
	s.log.Info("http action", "mqsc", cmd, "remote", r.RemoteAddr)
	s.exec(w, r, src, cmd)
}
