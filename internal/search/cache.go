package search

import (
	"container/list"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
)

// Cache keeps the united postings of recently read grams in memory, up to a byte budget, so that
// a query for common grams does not read and decode their segments every time. An entry is used
// only while the gram's segments are unchanged: segment rows are never deleted and every rewrite
// (the compactor's, search.Forget's) adds 1 to the row's rev, so the same number of segments and
// sum of rev (with the total count and newest segment) mean the same postings. Safe for
// concurrent use; the bitmaps it hands out must not be modified.
type Cache struct {
	mu      sync.Mutex
	budget  uint64
	used    uint64
	entries map[string]*list.Element
	lru     *list.List // front: most recently used
}

type cacheEntry struct {
	gram     string
	version  gramVersion
	postings *roaring.Bitmap
	bytes    uint64
}

// gramVersion identifies the state of a gram's segments (see SearchGramSizes).
type gramVersion struct{ size, segments, newest, revs int64 }

// NewCache returns a cache that holds at most budget bytes of bitmaps.
func NewCache(budget uint64) *Cache {
	return &Cache{budget: budget, entries: map[string]*list.Element{}, lru: list.New()}
}

// get returns the cached postings of gram if they are of version v.
func (c *Cache) get(gram string, v gramVersion) *roaring.Bitmap {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[gram]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if e.version != v {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.postings
}

// put stores the postings of gram at version v, evicting the least recently used entries.
func (c *Cache) put(gram string, v gramVersion, b *roaring.Bitmap) {
	if c == nil {
		return
	}
	size := b.GetSizeInBytes()
	if size > c.budget/4 {
		return // one gram may not take over the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[gram]; ok {
		c.remove(el)
	}
	for c.used+size > c.budget && c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
	c.entries[gram] = c.lru.PushFront(&cacheEntry{gram: gram, version: v, postings: b, bytes: size})
	c.used += size
}

func (c *Cache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.entries, e.gram)
	c.used -= e.bytes
}
