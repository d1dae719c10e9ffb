package drachtiofront_test

import (
	"runtime"
	"testing"
	"time"
)

// TestReconnect_NoGoroutineLeak restarts the peer several times; once the
// front is connected again the goroutine count is back where it was.
func TestReconnect_NoGoroutineLeak(t *testing.T) {
	f, stub := startFront(t, 19622, 16624)
	settle := func() int {
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	base := settle()
	for i := 0; i < 5; i++ {
		stub.StopControl()
		waitUntil(t, func() bool { return f.SBCAddress() != "" && stub.Clients() == 0 })
		if err := stub.StartControl(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return stub.Clients() == 1 && stub.Routed("") == 0 })
	}
	waitUntil(t, func() bool { return settle() <= base })
}

func waitUntil(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in 10s (goroutines %d)", runtime.NumGoroutine())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
