package e2e

import (
	"context"
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/testenv/sidecar"
)

// TestRedisSentinelFailover runs a real Redis master and replica watched by
// three redis-sentinel processes, registers phones through the service
// (JAMBONES_REDIS_SENTINELS), kills the master with SIGKILL and checks that
// registrations succeed again soon after the sentinels promote the replica,
// the service never restarted, and the bindings written before the crash
// are on the new master.
func TestRedisSentinelFailover(t *testing.T) {
	const master = "mymaster"
	primary := testenv.StartRedis(t, testenv.FreePort(t))
	replica := testenv.StartRedisWith(t, testenv.FreePort(t), testenv.RedisOptions{
		Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port())},
	})
	var sentinels []*testenv.SentinelProc
	var addrs []string
	for range 3 {
		s := testenv.StartSentinel(t, testenv.FreePort(t), testenv.SentinelOptions{
			MasterName: master, MasterPort: primary.Port(), Quorum: 2, DownAfter: time.Second,
		})
		sentinels = append(sentinels, s)
		addrs = append(addrs, s.Addr())
	}
	ctx := context.Background()
	// A failover needs every sentinel to know the replica and the two
	// other sentinels (they find each other through the master).
	eventuallyTrue(t, 30*time.Second, "sentinels know the replica and each other", func() bool {
		for _, s := range sentinels {
			c := s.Client()
			m, err := c.Master(ctx, master).Result()
			c.Close()
			if err != nil || m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
				return false
			}
		}
		return true
	})

	hook := sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	delete(env, "JAMBONES_REDIS_HOST")
	delete(env, "JAMBONES_REDIS_PORT")
	env["JAMBONES_REDIS_SENTINELS"] = strings.Join(addrs, ",")
	env["JAMBONES_REDIS_SENTINEL_MASTER_NAME"] = master
	env["SIP_LISTEN"] = "udp:127.0.0.1:15210"
	proc := sidecar.Start(t, env, "native front listening")
	const target = "127.0.0.1:15210"

	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: usersCSV(t, hook, 0, 10),
		Target: target, LocalIP: "127.0.0.41", LocalPort: 15211, Calls: 10, Rate: 20})
	pc := primary.Client()
	assertBound(t, pc, 0, 10)
	// The bindings must have reached the replica before the crash.
	if n, err := pc.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica = %d, %v", n, err)
	}

	primary.Kill()
	var promoted time.Time
	eventuallyTrue(t, 30*time.Second, "the sentinels promote the replica", func() bool {
		c := sentinels[0].Client()
		defer c.Close()
		addr, err := c.GetMasterAddrByName(ctx, master).Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(replica.Port()) {
			promoted = time.Now()
			return true
		}
		return false
	})

	// Register one phone until it works; the bound is generous (the
	// service's probe runs every 250 ms): docs/reliability.md has the figure.
	csv := usersCSV(t, hook, 10, 11)
	for {
		err := sidecar.RunErr(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: csv,
			Target: target, LocalIP: "127.0.0.42", LocalPort: 15212, Timeout: 5 * time.Second})
		if err == nil {
			t.Logf("first registration after the promotion succeeded %v after it", time.Since(promoted).Round(time.Millisecond))
			break
		}
		if time.Since(promoted) > 10*time.Second {
			t.Fatalf("no registration succeeded within 10 s of the promotion: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: usersCSV(t, hook, 11, 20),
		Target: target, LocalIP: "127.0.0.43", LocalPort: 15213, Calls: 9, Rate: 20})
	assertBound(t, replica.Client(), 0, 20)

	select {
	case <-proc.Done():
		t.Fatal("the service exited")
	default:
	}
	if n := strings.Count(proc.Logs(), "native front listening"); n != 1 {
		t.Errorf("service started %d times, want 1", n)
	}
}

// TestRedisTLS registers through a real redis-server that only speaks TLS
// and requires a client certificate (ENABLE_JAMBONES_REDIS_TLS with
// JAMBONES_REDIS_TLS_CA_FILE, _CERT_FILE, _KEY_FILE).
func TestRedisTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	server, client := ca.Issue("redis-server"), ca.Issue("sidecar")
	rp := testenv.StartRedisWith(t, testenv.FreePort(t), testenv.RedisOptions{
		Args: []string{"--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile,
			"--tls-ca-cert-file", ca.CertFile, "--tls-auth-clients", "yes"},
		TLS: &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{client.Pair}, MinVersion: tls.VersionTLS12},
	})
	sidecar.Webhook(t, webhookOptions())
	env := sidecar.BaseEnv(t)
	env["JAMBONES_REDIS_HOST"], env["JAMBONES_REDIS_PORT"] = "127.0.0.1", strconv.Itoa(rp.Port())
	env["ENABLE_JAMBONES_REDIS_TLS"] = "1"
	env["JAMBONES_REDIS_TLS_CA_FILE"] = ca.CertFile
	env["JAMBONES_REDIS_TLS_CERT_FILE"] = client.CertFile
	env["JAMBONES_REDIS_TLS_KEY_FILE"] = client.KeyFile
	env["SIP_LISTEN"] = "udp:127.0.0.1:15220"
	env["HTTP_PORT"] = "15229"
	sidecar.Start(t, env, "native front listening")

	sidecar.Run(t, sidecar.Sipp{Scenario: "uac-register-auth-success.xml", CSV: "good_user.csv",
		Target: "127.0.0.1:15220", LocalPort: 15221})
	readBinding(t, rp.Client(), "john@jambonz.org")
	if code, checks := probeReady(t, 15229); code != 200 || checks["redis"] != "ok" {
		t.Errorf("/ready = %d %v, want 200 with redis ok", code, checks)
	}

	// Without the client certificate the server refuses the handshake:
	// the TLS settings really are in use.
	plain := redis.NewClient(&redis.Options{Addr: rp.Addr(), TLSConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}, MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(context.Background()).Err(); err == nil {
		t.Errorf("redis-server on %s accepted a client without a certificate", rp.Addr())
	}
}
