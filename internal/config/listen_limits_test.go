package config

import (
	"strings"
	"testing"
)

func TestLoad_HTTPListen(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"off by default", nil, ""},
		{"HTTP_PORT alone: all interfaces, as before", map[string]string{"HTTP_PORT": "3000"}, ":3000"},
		{"HTTP_LISTEN", map[string]string{"HTTP_LISTEN": "127.0.0.1:3000"}, "127.0.0.1:3000"},
		{"HTTP_LISTEN wins over HTTP_PORT", map[string]string{"HTTP_LISTEN": "127.0.0.1:3001", "HTTP_PORT": "3000"}, "127.0.0.1:3001"},
		{"IPv6", map[string]string{"HTTP_LISTEN": "[::1]:3000"}, "[::1]:3000"},
		{"empty host: all interfaces", map[string]string{"HTTP_LISTEN": ":3000"}, ":3000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := mustLoad(t, tt.env); c.HTTPListen != tt.want {
				t.Errorf("HTTPListen = %q, want %q", c.HTTPListen, tt.want)
			}
		})
	}
	for _, bad := range []string{"3000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:http", "a b:1"} {
		if _, err := Load(env(map[string]string{"HTTP_LISTEN": bad})); err == nil || !strings.Contains(err.Error(), "HTTP_LISTEN") {
			t.Errorf("HTTP_LISTEN=%q: err = %v", bad, err)
		}
	}
}

func TestLoad_LogAndWebhookLimits(t *testing.T) {
	c := mustLoad(t, nil)
	if c.LogSourceLimit != 20 || c.WebhookMaxConcurrent != 50 {
		t.Errorf("defaults: LogSourceLimit=%d WebhookMaxConcurrent=%d", c.LogSourceLimit, c.WebhookMaxConcurrent)
	}
	c = mustLoad(t, map[string]string{"LOG_SOURCE_LIMIT": "0", "WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT": "0"})
	if c.LogSourceLimit != 0 || c.WebhookMaxConcurrent != 0 {
		t.Errorf("off: LogSourceLimit=%d WebhookMaxConcurrent=%d", c.LogSourceLimit, c.WebhookMaxConcurrent)
	}
	for _, name := range []string{"LOG_SOURCE_LIMIT", "WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT"} {
		if _, err := Load(env(map[string]string{name: "-1"})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=-1: err = %v", name, err)
		}
	}
}
