package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	rmq "github.com/rabbitmq/amqp091-go"
)

// TestAMQPMetrics: a member's /metrics shows its AMQP listener's figures
// (written by the listener, a child process, for the member: package
// amqp/stats): connections, channels, consumers, the group connections
// they hold, and the publishes and deliveries done.
func TestAMQPMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroupSized(t, 64<<20)
	port := freePort(t)
	g.startWith("QM1", "--amqp-port", strconv.Itoa(port), "--http", "127.0.0.1:0", "--no-chinit")
	m := regexp.MustCompile(`msg="http server listening" addr=(\S+)`).FindStringSubmatch(g.harness().Log("QM1"))
	if m == nil {
		t.Fatalf("QM1 did not log its HTTP address:\n%s", g.harness().Log("QM1"))
	}
	metricsURL := "http://" + m[1] + "/metrics"
	waitFor(t, "AMQP on its port", 30*time.Second, func() bool { return amqpAnswers(port) == nil })

	conn := amqpDial(t, port)
	pub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.QueueDeclare("metrics.q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		if err := pub.PublishWithContext(context.Background(), "", "metrics.q", false, false, rmq.Publishing{Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := sub.Consume("metrics.q", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-ds:
		case <-time.After(30 * time.Second):
			t.Fatal("a delivery did not come")
		}
	}
	want := map[string]float64{
		"qmgr_amqp_connections": 1, "qmgr_amqp_channels": 2, "qmgr_amqp_consumers": 1, "qmgr_amqp_group_connections": 2,
		"qmgr_amqp_published_messages_total": n, "qmgr_amqp_delivered_messages_total": n, "qmgr_amqp_publishers_blocked": 0,
	}
	var got map[string]float64
	waitFor(t, "the AMQP figures on /metrics", 30*time.Second, func() bool {
		got = scrapeAMQP(t, metricsURL)
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
}

// scrapeAMQP is the qmgr_amqp_ figures of a member's /metrics.
func scrapeAMQP(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	got := map[string]float64{}
	for name, mf := range mfs {
		if strings.HasPrefix(name, "qmgr_amqp_") && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return got
}
