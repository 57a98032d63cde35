package smds

import (
	"fmt"

	"github.com/dgraph-io/ristretto/v2"
)

// Cache is a process's read cache of message bodies read from data sets
// (the counterpart of IBM MQ's DSBUFS), shared by every data set the
// process opens with it. Entries are keyed by data set, run, Seq and
// checksum (see DataSet.cacheKey), so a freed and reused run is never
// served stale; costs are body bytes. Values are never modified after
// they are cached: a hit is copied out.
type Cache struct {
	c *ristretto.Cache[string, []byte]
}

// CacheMetrics are the cache's counters since it was made.
type CacheMetrics struct {
	Hits, Misses, Evictions uint64
	Bytes                   int64 // cost held now
	MaxBytes                int64
}

// NewCache makes a cache holding up to maxBytes of bodies.
func NewCache(maxBytes int64) (*Cache, error) {
	if maxBytes < 1<<16 {
		return nil, fmt.Errorf("%w: cache of %d bytes (at least 64 KiB)", ErrParams, maxBytes)
	}
	// Ristretto's admission counters: about ten per entry it may hold,
	// with entries of 16 KiB on average.
	counters := max(maxBytes/(16<<10)*10, 1000)
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters:        counters,
		MaxCost:            maxBytes,
		BufferItems:        64,
		Metrics:            true,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrParams, err)
	}
	return &Cache{c: c}, nil
}

func (c *Cache) get(key string) ([]byte, bool) { return c.c.Get(key) }
func (c *Cache) set(key string, v []byte)      { c.c.Set(key, v, int64(len(v))) }
func (c *Cache) del(key string)                { c.c.Del(key) }

// Wait waits until the sets made so far are applied (ristretto applies
// them asynchronously); for tests and benchmarks.
func (c *Cache) Wait() { c.c.Wait() }

// Metrics reports the cache's counters.
func (c *Cache) Metrics() CacheMetrics {
	m := c.c.Metrics
	return CacheMetrics{Hits: m.Hits(), Misses: m.Misses(), Evictions: m.KeysEvicted(),
		Bytes: c.c.MaxCost() - c.c.RemainingCost(), MaxBytes: c.c.MaxCost()}
}

// Close stops the cache's goroutines.
func (c *Cache) Close() { c.c.Close() }
