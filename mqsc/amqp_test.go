package mqsc_test

import (
	"strings"
	"testing"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/qm"
)

func mustRun(t *testing.T, m *qm.Member, cmd string) string {
	t.Helper()
	r := m.Exec(cmd)
	if !r.OK {
		t.Fatalf("%s: %s", cmd, r.Error)
	}
	return r.Text
}

// bindingsShown are the bindings DISPLAY BINDING(*) lists, one
// "source dest-type:dest key" a line.
func bindingsShown(t *testing.T, m *qm.Member) []string {
	t.Helper()
	r := m.Exec("DISPLAY BINDING(*)")
	if !r.OK {
		t.Fatalf("DISPLAY BINDING(*): %s", r.Error)
	}
	var out []string
	for _, o := range r.Objects {
		out = append(out, string(o))
	}
	return out
}

func saveBindings(t *testing.T, m *qm.Member, bs ...defs.Binding) {
	t.Helper()
	err := m.Repo().Update(func(tx *defs.Tx) error {
		for _, b := range bs {
			if err := b.Validate(); err != nil {
				return err
			}
			if _, err := tx.Save(defs.TypeBinding, b.Name(), b, defs.Create); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeletesTakeBindings: DELETE EXCHANGE deletes the exchange's
// bindings as a source and as a destination, DELETE QLOCAL those to the
// queue; the others stay; DISPLAY BINDING lists them.
func TestDeletesTakeBindings(t *testing.T) {
	m := startGoldenMember(t, t.TempDir())
	mustRun(t, m, "DEFINE EXCHANGE(ex1) EXTYPE(topic)")
	mustRun(t, m, "DEFINE EXCHANGE(ex2) EXTYPE(fanout)")
	mustRun(t, m, "DEFINE QLOCAL(Q1)")
	mustRun(t, m, "DEFINE QLOCAL(Q2)")
	q := func(src, dest, key string) defs.Binding {
		return defs.Binding{Source: src, DestKind: defs.DestQueue, Dest: dest, Key: key}
	}
	x := func(src, dest, key string) defs.Binding {
		return defs.Binding{Source: src, DestKind: defs.DestExchange, Dest: dest, Key: key}
	}
	saveBindings(t, m, q("ex1", "Q1", "a.*"), x("ex1", "ex2", "#"), q("ex2", "Q1", ""), x("ex2", "ex1", ""),
		q("ex2", "Q2", ""), q("amq.direct", "Q1", "k"), q("amq.direct", "Q2", "k"), x("ex2", "ex2", ""))
	want := []string{
		`{"SOURCE":"amq.direct","DESTTYPE":"QUEUE","DEST":"Q1","KEY":"k"}`,
		`{"SOURCE":"amq.direct","DESTTYPE":"QUEUE","DEST":"Q2","KEY":"k"}`,
		`{"SOURCE":"ex1","DESTTYPE":"EXCHANGE","DEST":"ex2","KEY":"#"}`,
		`{"SOURCE":"ex1","DESTTYPE":"QUEUE","DEST":"Q1","KEY":"a.*"}`,
		`{"SOURCE":"ex2","DESTTYPE":"EXCHANGE","DEST":"ex1","KEY":""}`,
		`{"SOURCE":"ex2","DESTTYPE":"EXCHANGE","DEST":"ex2","KEY":""}`,
		`{"SOURCE":"ex2","DESTTYPE":"QUEUE","DEST":"Q1","KEY":""}`,
		`{"SOURCE":"ex2","DESTTYPE":"QUEUE","DEST":"Q2","KEY":""}`,
	}
	if got := bindingsShown(t, m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("DISPLAY BINDING(*):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if text := mustRun(t, m, "DISPLAY BINDING(ex1)"); !strings.Contains(text, "KEY('a.*')") || strings.Contains(text, "SOURCE(ex2)") {
		t.Fatalf("DISPLAY BINDING(ex1):\n%s", text)
	}

	mustRun(t, m, "DELETE EXCHANGE(ex2)")
	want = []string{want[0], want[1], want[3]}
	if got := bindingsShown(t, m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after DELETE EXCHANGE(ex2):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mustRun(t, m, "DELETE QLOCAL(Q1)")
	want = []string{want[1]}
	if got := bindingsShown(t, m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after DELETE QLOCAL(Q1):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestQLocalAMQPAttrs: DISPLAY QLOCAL shows a queue's AMQP attributes
// when it has them and not otherwise; DEFINE REPLACE and ALTER keep them.
func TestQLocalAMQPAttrs(t *testing.T) {
	m := startGoldenMember(t, t.TempDir())
	mustRun(t, m, "DEFINE QLOCAL(AQ)")
	mustRun(t, m, "DEFINE QLOCAL(MQQ)")
	dlrk := "dead"
	err := m.Repo().Update(func(tx *defs.Tx) error {
		q, err := tx.Queue("AQ")
		if err != nil {
			return err
		}
		q.AMQP = &defs.QueueAMQP{Durable: true, MessageTTL: 60000, Expires: -1, MaxLength: 10, Overflow: "reject-publish",
			MaxPriority: 5, DLX: "dlx", DLRK: &dlrk}
		_, err = tx.Save(defs.TypeQLocal, q.Name, q, defs.Alter)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const amqpAttrs = "DURABLE(YES) AUTODEL(NO) EXCLUSIVE() MSGTTL(60000) EXPIRES(-1) MAXLEN(10) OVERFLOW(reject-publish) MAXPRTY(5) DLX(dlx) DLRK(dead)"
	shows := func(name string) string {
		return strings.Join(strings.Fields(mustRun(t, m, "DISPLAY QLOCAL("+name+") ALL")), " ")
	}
	if got := shows("AQ"); !strings.Contains(got, amqpAttrs) {
		t.Fatalf("DISPLAY QLOCAL(AQ) ALL:\n%s\nwant it to show %s", got, amqpAttrs)
	}
	for _, a := range strings.Fields(amqpAttrs) {
		key := a[:strings.IndexByte(a, '(')+1]
		if got := shows("MQQ"); strings.Contains(got, key) {
			t.Errorf("DISPLAY QLOCAL(MQQ) ALL, a queue without AMQP attributes, shows %s:\n%s", key, got)
		}
	}
	mustRun(t, m, "DEFINE QLOCAL(AQ) REPLACE MAXDEPTH(20)")
	mustRun(t, m, "ALTER QLOCAL(AQ) DESCR('x')")
	if got := shows("AQ"); !strings.Contains(got, amqpAttrs) || !strings.Contains(got, "MAXDEPTH(20)") {
		t.Fatalf("after REPLACE and ALTER:\n%s", got)
	}
	if r := m.Exec("DISPLAY QLOCAL(AQ) MSGTTL DLX"); !r.OK || !strings.Contains(r.Text, "MSGTTL(60000)") || strings.Contains(r.Text, "MAXLEN") {
		t.Fatalf("DISPLAY QLOCAL(AQ) MSGTTL DLX: %+v", r)
	}
}
