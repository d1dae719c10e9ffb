package registrar_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/breaker"
)

// A store known to be down (its circuit breaker open) is answered 503 at
// once, before any account lookup or challenge.
func TestRegister_StoreUnavailableAnswers503AtOnce(t *testing.T) {
	e := newEnv()
	e.store.bindingErr = fmt.Errorf("redisstore: get: %w",
		&breaker.UnavailableError{Backend: "redis", Since: time.Now(), Cause: errors.New("connection refused")})
	res := e.serve(t, register(t))
	expect(t, res, 503, map[string]string{"Retry-After": "30"})
	if len(e.dir.realms) != 0 {
		t.Fatalf("account looked up with the store down: %v", e.dir.realms)
	}
}
