package qsg

import (
	"fmt"
	"sync"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
)

// routes is the broker's cache of the shared definitions it routes by:
// exchanges, bindings and queues, reloaded when the group's definitions
// counter moves (every change bumps it).
type routes struct {
	mu        sync.RWMutex
	ver       uint64 // the definitions counter the cache is of
	loaded    bool
	exchanges map[string]defs.Exchange
	bindings  map[string][]binding // by source exchange
	queues    map[string]defs.Queue
}

// binding is a defs.Binding with its arguments decoded.
type binding struct {
	defs.Binding
	args amqp.Table
}

// current makes the cache current, reloaded first if the definitions
// changed. On success the caller holds r.mu for reading until done with
// what it read; on an error it holds nothing.
func (r *routes) current(g *group.Group, repo *defs.Repo) error {
	v, err := g.Counter(group.CounterDefs)
	if err != nil {
		return err
	}
	r.mu.RLock()
	if r.loaded && r.ver == v {
		return nil
	}
	r.mu.RUnlock()
	r.mu.Lock()
	err = r.load(repo, v)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	r.mu.RLock()
	return nil
}

// load reloads the cache as of definitions counter v.
func (r *routes) load(repo *defs.Repo, v uint64) error {
	if r.loaded && r.ver == v {
		return nil
	}
	ex := map[string]defs.Exchange{}
	for name, kind := range defs.BuiltinExchanges {
		ex[name] = defs.Exchange{Name: name, Kind: kind, Durable: true}
	}
	bs := map[string][]binding{}
	qs := map[string]defs.Queue{}
	err := repo.View(func(tx *defs.Tx) error {
		es, err := tx.Exchanges("*")
		if err != nil {
			return err
		}
		for _, e := range es {
			ex[e.Name] = e
		}
		all, err := tx.AllBindings()
		if err != nil {
			return err
		}
		for _, b := range all {
			t, err := amqp.DecodeTable(b.Args)
			if len(b.Args) == 0 {
				t, err = nil, nil
			}
			if err != nil {
				return fmt.Errorf("binding %s: %w", b.Name(), err)
			}
			bs[b.Source] = append(bs[b.Source], binding{b, t})
		}
		ql, err := tx.Queues("*")
		for _, q := range ql {
			qs[q.Name] = q
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("qsg: load definitions: %w", err)
	}
	r.exchanges, r.bindings, r.queues, r.ver, r.loaded = ex, bs, qs, v, true
	return nil
}

// maxExchangeHops bounds how many exchange-to-exchange bindings a publish
// follows (a cycle of them is allowed, as in RabbitMQ, and visited once).
const maxExchangeHops = 64

// route returns the queues a publish to exchange with key and headers
// reaches, each once. The caller holds r.mu for reading.
func (r *routes) route(exchange, key string, headers amqp.Table) []string {
	if exchange == "" {
		if _, ok := r.queues[key]; ok {
			return []string{key}
		}
		return nil
	}
	var out []string
	seenQ := map[string]bool{}
	seenX := map[string]bool{exchange: true}
	todo := []string{exchange}
	for len(todo) > 0 && len(seenX) <= maxExchangeHops {
		x := todo[0]
		todo = todo[1:]
		e, ok := r.exchanges[x]
		if !ok {
			continue
		}
		for _, b := range r.bindings[x] {
			if !matches(e.Kind, &b, key, headers) {
				continue
			}
			switch {
			case b.DestKind == defs.DestQueue && !seenQ[b.Dest]:
				seenQ[b.Dest] = true
				out = append(out, b.Dest)
			case b.DestKind == defs.DestExchange && !seenX[b.Dest]:
				seenX[b.Dest] = true
				todo = append(todo, b.Dest)
			}
		}
	}
	return out
}

// matches reports whether binding b of an exchange of kind takes a publish.
func matches(kind string, b *binding, key string, headers amqp.Table) bool {
	switch kind {
	case defs.ExchangeFanout:
		return true
	case defs.ExchangeTopic:
		return amqp.TopicMatch(b.Key, key)
	case defs.ExchangeHeaders:
		return amqp.HeadersMatch(b.args, headers)
	default:
		return b.Key == key
	}
}
