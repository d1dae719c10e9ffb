package testenv

import (
	"testing"

	"github.com/redis/rueidis"
)

// RueidisClient returns a client of the Redis server at addr of the kind
// the service uses (rueidis: caching and retries off), closed at the end of
// the test, for the Redis-backed components under test (stores, sets,
// buses); tests inspect keys with go-redis. A server that does not answer
// gives a client whose commands fail (as the service's does).
func RueidisClient(t testing.TB, addr string) rueidis.Client {
	t.Helper()
	c, _ := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{addr},
		DisableCache:      true,
		DisableRetry:      true,
		ForceSingleClient: true,
		ClientSetInfo:     rueidis.DisableClientSetInfo,
	})
	if c == nil {
		t.Fatalf("rueidis client of %s not made", addr)
	}
	t.Cleanup(c.Close)
	return c
}
