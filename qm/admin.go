package qm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mqsc"
)

// The command server: each member listens on a unix socket in the data
// directory (<name>.cmd, mode 0660) for admin commands, from the group's
// owner and the members of its Unix group only (cmdsock.go). A request is one
// JSON line, the answer one JSON line:
//
//	-> {"mqsc":"DISPLAY QLOCAL(*)","json":false}
//	<- {"ok":true,"text":"...","objects":[{...}],"error":""}
//
// A request with "progress":true is also sent, before the answer, lines
// carrying the progress of a long command (BACKUP CFSTRUCT, RECOVER
// CFSTRUCT), at most one every progressEvery:
//
//	-> {"mqsc":"BACKUP CFSTRUCT(APPL1)","progress":true}
//	<- {"ok":false,"progress":{"done":5000,"total":20000},"member":"QM1"}
//	<- {"ok":true,"text":"...","member":"QM1"}
//
// A member older than progress ignores the field and sends the answer
// alone; a client that does not ask gets no progress line.
//
// Requests are decoded with DecodeRequest, answers with DecodeResponse;
// neither panics on hostile input (FuzzDecodeRequest, FuzzDecodeResponse).

// Request is an admin request.
type Request struct {
	MQSC string `json:"mqsc"`
	// Progress asks for progress lines before the answer.
	Progress bool `json:"progress,omitempty"`
}

// Progress is how far a long command is: done of total (0: not known yet),
// in messages.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// progressEvery is the least time between two progress lines.
const progressEvery = 200 * time.Millisecond

// Response is its answer.
type Response struct {
	OK      bool              `json:"ok"`
	Text    string            `json:"text"`              // MQSC-style output
	Objects []json.RawMessage `json:"objects,omitempty"` // one JSON object per result
	Error   string            `json:"error,omitempty"`
	Member  string            `json:"member"`
	// Progress is set on a progress line only, never on the answer.
	Progress *Progress `json:"progress,omitempty"`
}

// DecodeResponse parses one line from a command server: an answer, or a
// progress line (Progress set).
func DecodeResponse(b []byte) (Response, error) {
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return Response{}, fmt.Errorf("qm: malformed answer: %w", err)
	}
	if p := r.Progress; p != nil && (p.Done < 0 || p.Total < 0) {
		return Response{}, fmt.Errorf("qm: malformed progress %+v", *p)
	}
	return r, nil
}

// MaxRequest bounds a request line.
const MaxRequest = 1 << 20

// DecodeRequest parses one request line.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if len(b) > MaxRequest {
		return r, fmt.Errorf("qm: request of %d bytes (at most %d)", len(b), MaxRequest)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("qm: malformed request: %w", err)
	}
	if r.MQSC == "" {
		return r, errors.New("qm: empty request")
	}
	return r, nil
}

// SocketPath is where member name listens for commands.
func SocketPath(g group.Config, name string) string {
	return filepath.Join(g.DataDir, name+".cmd")
}

// CreateStructure creates the file of a newly defined structure (mqsc.Env).
func (m *Member) CreateStructure(c defs.CFStruct) error {
	_, err := m.structure(c, true)
	return err
}

// DefsChanged bumps the group's definitions counter (mqsc.Env).
func (m *Member) DefsChanged() error {
	return m.withOwn(func(o *lockfree.Owner) error {
		_, err := m.g.AddCounter(o, group.CounterDefs, 1)
		return err
	})
}

// QMgrName is the member's name (mqsc.Env).
func (m *Member) QMgrName() string { return m.cfg.Name }

// Exec runs MQSC commands on this member.
func (m *Member) Exec(text string) Response { return m.ExecProgress(text, nil) }

// ExecProgress is Exec that reports the progress of a long command to
// progress (when not nil), from the goroutine running it.
func (m *Member) ExecProgress(text string, progress func(done, total int64)) Response {
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	m.cmdProgress = progress
	defer func() { m.cmdProgress = nil }()
	if m.stopping.Load() {
		return Response{Error: fmt.Sprintf("%v: %s is stopping", ErrStopped, m.cfg.Name), Member: m.cfg.Name}
	}
	rs, err := mqsc.Run(m, text)
	resp := Response{OK: err == nil, Text: mqsc.Text(rs), Member: m.cfg.Name}
	for _, o := range mqsc.JSON(rs) {
		resp.Objects = append(resp.Objects, json.RawMessage(o))
	}
	if err != nil {
		resp.Error = err.Error()
	}
	return resp
}

// serveCommands accepts admin connections until the listener closes.
func (m *Member) serveCommands(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if !m.admit(c) {
			c.Close()
			continue
		}
		go m.serveConn(c)
	}
}

// admit reports whether the peer of command connection c is trusted
// (cmdsock.go); a refusal is logged and counted.
func (m *Member) admit(c net.Conn) bool {
	p, err := PeerOf(c)
	if err == nil && m.cmdTrust.Allows(p.Uid, p.Gid, p.Groups) {
		return true
	}
	n := m.cmdRefused.Add(1)
	if err != nil {
		m.log.Warn("command connection refused", "event", "connection_refused", "listener", "command", "reason", "credentials", "err", err, "refused", n)
	} else {
		m.log.Warn("command connection refused: the peer is neither the group's owner nor a member of its group",
			"event", "connection_refused", "listener", "command", "reason", "untrusted_peer", "peer", p.String(), "owner_uid", m.cmdTrust.Owner, "group_gid", m.cmdTrust.Group, "refused", n)
	}
	return false
}

// CommandsRefused is how many command connections were refused
// (mqsc.Env).
func (m *Member) CommandsRefused() int64 { return m.cmdRefused.Load() }

func (m *Member) serveConn(c net.Conn) {
	m.mu.Lock()
	if m.stopping.Load() {
		m.mu.Unlock()
		c.Close()
		return
	}
	m.cmdConns[c] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.cmdConns, c)
		m.mu.Unlock()
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		line, err := readLine(r, MaxRequest)
		if err != nil {
			return
		}
		var resp Response
		req, err := DecodeRequest(line)
		if err != nil {
			resp = Response{Error: err.Error(), Member: m.cfg.Name}
		} else {
			var progress func(done, total int64)
			if req.Progress {
				progress = progressLines(c, m.cfg.Name)
			}
			resp = m.ExecProgress(req.MQSC, progress)
			shown, errText := mqsc.Redact(req.MQSC), resp.Error
			if errText != "" && mqsc.NamesSecret(req.MQSC) {
				// A parser's error quotes the text it refused, which may be
				// a piece of the secret without its attribute's name.
				errText = "(withheld: the command sets a secret)"
			}
			m.log.Info("command", "mqsc", shown, "ok", resp.OK, "err", errText)
		}
		b, _ := json.Marshal(resp)
		if _, err := c.Write(append(b, '\n')); err != nil {
			return
		}
	}
}

// progressLines writes progress lines to c, at most one every
// progressEvery (the first at once); a write error drops the rest (the
// answer's write then fails too).
func progressLines(c net.Conn, member string) func(done, total int64) {
	var last time.Time
	failed := false
	return func(done, total int64) {
		if failed || time.Since(last) < progressEvery {
			return
		}
		last = time.Now()
		b, _ := json.Marshal(Response{Member: member, Progress: &Progress{Done: done, Total: total}})
		if _, err := c.Write(append(b, '\n')); err != nil {
			failed = true
		}
	}
}

// reportProgress reports the progress of the command running, if one
// asked (ExecProgress). Callers hold cmdMu.
func (m *Member) reportProgress(done, total int64) {
	if m.cmdProgress != nil {
		m.cmdProgress(done, total)
	}
}

func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		if len(out) > max {
			return nil, fmt.Errorf("qm: line longer than %d bytes", max)
		}
		if !isPrefix {
			return out, nil
		}
	}
}

// openCommands opens the command socket (replacing a previous
// incarnation's: we hold the member's slot).
func (m *Member) openCommands() (net.Listener, error) {
	cfg := m.g.Config()
	path := SocketPath(cfg, m.cfg.Name)
	var err error
	if m.cmdTrust, err = TrustFor(cfg.DataDir); err != nil {
		return nil, err
	}
	l, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("qm: command socket %s: %w", path, err)
	}
	return l, nil
}

// checkServer refuses to send commands to a socket served by a process
// outside the group (cmdsock.go).
func checkServer(g group.Config, member string, c net.Conn) error {
	t, err := TrustFor(g.DataDir)
	if err != nil {
		return err
	}
	p, err := PeerOf(c)
	if err != nil {
		return err
	}
	if !t.Allows(p.Uid, p.Gid, p.Groups) {
		return fmt.Errorf("%w: the command socket of %s is served by %v, neither the group's owner (uid %d) nor a member of its group (gid %d)",
			ErrUntrustedPeer, member, p, t.Owner, t.Group)
	}
	return nil
}

// Command sends MQSC commands to a member's command server.
func Command(g group.Config, member, text string) (Response, error) {
	return CommandProgress(g, member, text, nil)
}

// CommandProgress is Command that asks for the progress of a long command
// and passes each progress line to progress (when not nil).
func CommandProgress(g group.Config, member, text string, progress func(Progress)) (Response, error) {
	c, err := net.DialTimeout("unix", SocketPath(g, member), 5*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("qm: member %s is not reachable: %w", member, err)
	}
	defer c.Close()
	if err := checkServer(g, member, c); err != nil {
		return Response{}, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	b, _ := json.Marshal(Request{MQSC: text, Progress: progress != nil})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Response{}, err
	}
	r := bufio.NewReader(c)
	for {
		line, err := readLine(r, 64<<20)
		if err != nil && !errors.Is(err, io.EOF) {
			return Response{}, fmt.Errorf("qm: reading the answer of %s: %w", member, err)
		}
		resp, err := DecodeResponse(line)
		if err != nil {
			return Response{}, fmt.Errorf("%w (from %s)", err, member)
		}
		if resp.Progress == nil {
			return resp, nil
		}
		if progress != nil {
			progress(*resp.Progress)
		}
	}
}
