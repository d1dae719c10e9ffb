// Package store is the home of what the registration stores share: the key
// names of the data model (docs/contract.md#redis), the interfaces their
// consumers use, and what is written once over any key-value store (bans).
//
// Two implementations hold the same keys with the same semantics:
// redisstore over Redis (a cluster) and memstore in process (standalone
// mode); storetest and kvtest keep them in step.
package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// ActiveUsers is the cluster-wide sorted set of registered users (member
// user:<aor>, score = expiry in ms).
const ActiveUsers = "active-user"

const userPrefix = "user:"

// UserKey returns the key of an AoR's binding.
func UserKey(aor string) string { return userPrefix + aor }

// AoROf returns the AoR of a binding's key (UserKey's inverse).
func AoROf(userKey string) string { return strings.TrimPrefix(userKey, userPrefix) }

// RealmKey returns the key of a realm's index, a sorted set like
// ActiveUsers holding that realm's members only.
func RealmKey(realm string) string { return "active-user-realm:" + strings.ToLower(realm) }

// RealmOf returns the realm (domain) of an AoR.
func RealmOf(aor string) string {
	if i := strings.LastIndexByte(aor, '@'); i >= 0 {
		return aor[i+1:]
	}
	return aor
}

// Registrations is what the service needs of a registration store: the
// registrar's operations, pruning and listing.
type Registrations interface {
	registrar.Store
	// Count prunes expired members of active-user and returns how many remain.
	Count(ctx context.Context) (int, error)
	// List returns the unexpired bindings by AoR, of one realm when realm != "".
	List(ctx context.Context, realm string) (map[string]registrar.Binding, error)
}

// KV is the key-value operations both stores offer (Redis commands, and
// their in-process equivalents): what regbot, the gateway pinger, nonce
// claims and bans keep. Consumers declare the subsets they use.
type KV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	// Set stores a string value with an optional TTL (SET key value [PX ttl]).
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	// SetNX stores value with ttl only when key is absent, in one step.
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	// ExpireIfEqual sets key's TTL only while it holds value.
	ExpireIfEqual(ctx context.Context, key, value string, ttl time.Duration) (bool, error)
	// DelIfEqual deletes key only while it holds value.
	DelIfEqual(ctx context.Context, key, value string) (bool, error)
	// IncrWithin increments a counter; a new counter expires after window
	// (INCR, then EXPIRE NX, in one step).
	IncrWithin(ctx context.Context, key string, window time.Duration) (int, error)
	// HSetTTL sets hash fields and the key's TTL in one step.
	HSetTTL(ctx context.Context, key string, fields map[string]string, ttl time.Duration) error
	HDel(ctx context.Context, key string, fields ...string) error
	HGetAll(ctx context.Context, key string) (map[string]string, error)
	// Del removes keys and returns how many existed.
	Del(ctx context.Context, keys ...string) (int, error)
	// Exists returns how many of keys exist.
	Exists(ctx context.Context, keys ...string) (int, error)
	// TTL returns a key's remaining time: -1 without expiry, -2 when absent.
	TTL(ctx context.Context, key string) (time.Duration, error)
}

// ErrFull is returned by a bounded in-process store asked to create a key
// while it holds its maximum of live keys.
var ErrFull = errors.New("store: full")
