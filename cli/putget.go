package cli

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/qmgr/qmgr/amqp/qsg"
	"github.com/qmgr/qmgr/internal/progress"
	"github.com/qmgr/qmgr/mq"
)

// parseID reads a message or correlation id: 48 hex digits, or text
// (padded with zero bytes).
func parseID(s string) (*[24]byte, error) {
	if s == "" {
		return nil, nil
	}
	var id [24]byte
	if len(s) == 48 {
		if b, err := hex.DecodeString(s); err == nil {
			copy(id[:], b)
			return &id, nil
		}
	}
	if len(s) > 24 {
		return nil, fmt.Errorf("id %q: give 48 hex digits or at most 24 characters", s)
	}
	copy(id[:], s)
	return &id, nil
}

func connect(gf groupFlags, name string) (*mq.Conn, error) {
	cfg, err := gf.config()
	if err != nil {
		return nil, err
	}
	return mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: name, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
}

// cmdPut puts messages: stdin lines, or generated ones (with --count,
// showing progress on stderr: internal/progress).
func cmdPut(args []string, in io.Reader, out, errOut io.Writer) error {
	var gf groupFlags
	var name, queue, correl string
	var count, size, prio, every int
	var persistent, syncpoint bool
	fs := newFlags("put", out)
	gf.register(fs)
	fs.StringVar(&name, "name", "", "member to connect through (default: any active)")
	fs.StringVar(&queue, "queue", "", "queue (required)")
	fs.IntVar(&count, "count", 0, "generate this many messages instead of reading stdin")
	fs.IntVar(&size, "size", 64, "size of generated messages")
	fs.BoolVar(&persistent, "persistent", false, "persistent messages")
	fs.IntVar(&prio, "priority", mq.PriorityAsQDef, "priority 0-9 (default: the queue's DEFPRTY)")
	fs.StringVar(&correl, "correlid", "", "correlation id (48 hex digits or text)")
	fs.BoolVar(&syncpoint, "syncpoint", false, "put in units of work")
	fs.IntVar(&every, "commit-every", 1, "with --syncpoint: commit after this many messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if queue == "" {
		return errors.New("put: --queue is required")
	}
	cid, err := parseID(correl)
	if err != nil {
		return err
	}
	c, err := connect(gf, name)
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open(queue, mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	defer q.Close()
	n := 0
	put := func(body []byte) error {
		m := mq.Message{Body: body, Priority: prio, Persistence: mq.NotPersistent}
		if persistent {
			m.Persistence = mq.Persistent
		}
		if cid != nil {
			m.CorrelID = *cid
		}
		if err := q.Put(&m, mq.PutOptions{Syncpoint: syncpoint}); err != nil {
			return err
		}
		n++
		if syncpoint && n%every == 0 {
			return c.Commit()
		}
		return nil
	}
	if count > 0 {
		bar := progress.Stderr(errOut, "put "+queue, int64(count), "msgs")
		defer bar.Done()
		for i := 0; i < count; i++ {
			body := []byte(fmt.Sprintf("%0*d", size, i))
			if len(body) > size {
				body = body[len(body)-size:]
			}
			if err := put(body); err != nil {
				return err
			}
			bar.Add(1)
		}
	} else {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 100<<20)
		for sc.Scan() {
			if err := put(append([]byte(nil), sc.Bytes()...)); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if syncpoint {
		return c.Commit()
	}
	return nil
}

// cmdGet gets (or browses) messages and prints each body on its own line;
// with --syncpoint it prints "#commit" after each successful commit. With
// --count it shows progress on stderr (internal/progress).
func cmdGet(args []string, _ io.Reader, out, errOut io.Writer) error {
	var gf groupFlags
	var name, queue, msgid, correl string
	var count, every int
	var wait time.Duration
	var browse, syncpoint bool
	fs := newFlags("get", out)
	gf.register(fs)
	fs.StringVar(&name, "name", "", "member to connect through (default: any active)")
	fs.StringVar(&queue, "queue", "", "queue (required)")
	fs.IntVar(&count, "count", 0, "stop after this many messages (default: until none is left)")
	fs.DurationVar(&wait, "wait", 0, "wait this long for each message")
	fs.BoolVar(&browse, "browse", false, "browse: do not remove the messages")
	fs.StringVar(&msgid, "msgid", "", "only the message with this message id")
	fs.StringVar(&correl, "correlid", "", "only messages with this correlation id")
	fs.BoolVar(&syncpoint, "syncpoint", false, "get in units of work")
	fs.IntVar(&every, "commit-every", 1, "with --syncpoint: commit after this many messages")
	props := fs.Bool("props", false, "before each body, a line '# {...}' with its AMQP exchange, routing key and properties (JSON), when it has them")
	headers := fs.Bool("headers", false, "a message with a dead-letter header (format MQDEAD) or an Unexpected Message Queue header (MQRUMQH): a line '# {...}' with the header (JSON), then the original body")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if queue == "" {
		return errors.New("get: --queue is required")
	}
	if every < 1 {
		return errors.New("get: --commit-every must be at least 1")
	}
	mid, err := parseID(msgid)
	if err != nil {
		return err
	}
	cid, err := parseID(correl)
	if err != nil {
		return err
	}
	c, err := connect(gf, name)
	if err != nil {
		return err
	}
	defer c.Disconnect()
	w := bufio.NewWriter(out)
	defer w.Flush()
	opts := mq.OpenOptions{Input: !browse, Browse: browse}
	q, err := c.Open(queue, opts)
	if err != nil {
		return err
	}
	defer q.Close()
	gopt := mq.GetOptions{Syncpoint: syncpoint && !browse, Wait: wait, MsgID: mid, CorrelID: cid}
	var cur *mq.BrowseCursor
	if browse {
		if cur, err = q.Browse(); err != nil {
			return err
		}
	}
	n, pending := 0, 0
	var bar *progress.Bar // nil (silent) without --count
	if count > 0 {
		bar = progress.Stderr(errOut, "get "+queue, int64(count), "msgs")
		defer bar.Done()
	}
	for count == 0 || n < count {
		var m *mq.Message
		if browse {
			m, err = cur.Next(gopt)
		} else {
			m, err = q.Get(gopt)
		}
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			w.Flush()
			return err
		}
		if *props {
			writeAMQPProps(w, m.Properties)
		}
		body := m.Body
		if *headers {
			body = writeHeader(w, m)
		}
		w.Write(body)
		w.WriteByte('\n')
		n++
		bar.Add(1)
		if gopt.Syncpoint {
			if pending++; pending == every {
				if err := c.Commit(); err != nil {
					w.Flush()
					return err
				}
				w.WriteString("#commit\n")
				w.Flush()
				pending = 0
			}
		}
	}
	if gopt.Syncpoint && pending > 0 {
		if err := c.Commit(); err != nil {
			return err
		}
		w.WriteString("#commit\n")
	}
	return nil
}

// writeAMQPProps writes a message's AMQP side as a comment line of JSON,
// when its properties are AMQP's.
func writeAMQPProps(w io.Writer, p []byte) {
	st, ok, err := qsg.DecodeStored(p)
	if !ok {
		return
	}
	if err != nil {
		fmt.Fprintf(w, "# AMQP properties unreadable: %v\n", err)
		return
	}
	b, err := json.Marshal(st)
	if err != nil {
		fmt.Fprintf(w, "# AMQP properties: %v\n", err)
		return
	}
	fmt.Fprintf(w, "# %s\n", b)
}
