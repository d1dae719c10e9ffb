package events

import (
	"context"
	"sync"
)

// Bus is the in-process fan-out of encoded events: the pub/sub channel of
// the embedded store, where there is one instance.
type Bus struct {
	mu   sync.Mutex
	subs map[chan []byte]struct{}
	// Dropped, when set, is told of an event a slow subscriber missed.
	Dropped func()
}

// subBuffer is how many events a subscriber may lag behind.
const subBuffer = 1024

// Broadcast hands raw to every subscriber that has room; it never blocks.
func (b *Bus) Broadcast(raw []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- raw:
		default:
			if b.Dropped != nil {
				b.Dropped()
			}
		}
	}
}

// Subscribe follows the bus until ctx ends; the channel is then closed.
func (b *Bus) Subscribe(ctx context.Context) (<-chan []byte, error) {
	ch := make(chan []byte, subBuffer)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan []byte]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
		close(ch)
	})
	return ch, nil
}
