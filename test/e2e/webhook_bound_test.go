package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sipclient"
)

// TestWebhookBoundPerAccount: with WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT=2 and
// a slow hook, two REGISTERs of the account wait at the hook; a third is
// answered 503 with Retry-After at once, without a hook call. Once the slow
// calls are over the account registers again.
func TestWebhookBoundPerAccount(t *testing.T) {
	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["SIP_LISTEN"] = "tcp:127.0.0.1:15320"
	env["WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT"] = "2"
	env["WEBHOOK_TIMEOUT_MS"] = "20000"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15320"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	do := func(user, password string) (*sip.Response, error) {
		cli, err := sipclient.New(nil)
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		return cli.Do(ctx, sipclient.Register{Transport: "tcp", Target: target, User: user, Realm: "jambonz.org",
			Password: password, Expires: 60, CallID: fmt.Sprintf("bound-%s-%d", user, time.Now().UnixNano())})
	}

	hook.Reset()
	hook.SetDelay(4 * time.Second)
	slow := make(chan error, 2)
	for range 2 {
		go func() {
			res, err := do("john", "1234")
			if err == nil && res.StatusCode != 200 {
				err = fmt.Errorf("answer %d %s", res.StatusCode, res.Reason)
			}
			slow <- err
		}()
	}
	eventuallyTrue(t, 10*time.Second, "two calls at the hook", func() bool { return hook.Count() == 2 })

	res, err := do("jane", "5678")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("third REGISTER = %d %s (Retry-After %v), want 503 with Retry-After", res.StatusCode, res.Reason, res.GetHeader("Retry-After"))
	}
	if n := hook.Count(); n != 2 {
		t.Fatalf("hook calls = %d, want 2 (the third must not call)", n)
	}
	if !proc.WaitLog("too many calls in flight") {
		t.Errorf("the 503 is not logged as the webhook bound")
	}
	for range 2 {
		if err := <-slow; err != nil {
			t.Errorf("a REGISTER waiting at the hook: %v", err)
		}
	}

	hook.SetDelay(0)
	if res, err := do("jane", "5678"); err != nil || res.StatusCode != 200 {
		t.Fatalf("after the slow calls: %v %v, want 200", res, err)
	}
}
