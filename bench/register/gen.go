package main

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
)

// Both paths spread their users over accounts, as in a jambonz cluster where each
// customer has its own devices: the clients path one account per usersPerAccount
// users (a000.bench.local, a001...), the webhook path hookAccounts accounts
// (h000.hook.local ...), each with its own registration webhook row, all served by
// the driver. Webhook users go to the accounts in turn (user i to account i mod
// hookAccounts), so that, as in a real cluster, consecutive REGISTERs are for
// different accounts: the per-account bound of webhook calls in flight
// (WEBHOOK_MAX_CONCURRENT_PER_ACCOUNT) stays each account's policy and does not set
// the bench's ceiling (docs/performance.md). Kamailio uses the clients-path realms.
const (
	hookDomain      = "hook.local"
	hookAccounts    = 100
	usersPerAccount = 100
	spSID           = "b0000000-0000-4000-8000-000000000001"
)

func clientsRealm(i int) string { return fmt.Sprintf("a%03d.bench.local", (i-1)/usersPerAccount) }
func clientsAccount(i int) string {
	return fmt.Sprintf("b2000000-0000-4000-8000-%012d", (i-1)/usersPerAccount)
}
func hookRealm(i int) string { return fmt.Sprintf("h%03d.%s", (i-1)%hookAccounts, hookDomain) }
func hookAccount(i int) string {
	return fmt.Sprintf("b3000000-0000-4000-8000-%012d", (i-1)%hookAccounts)
}
func hookWebhook(i int) string {
	return fmt.Sprintf("b4000000-0000-4000-8000-%012d", (i-1)%hookAccounts)
}

func userName(i int) string { return fmt.Sprintf("u%06d", i) }
func password(i int) string { return fmt.Sprintf("pw%06dx", i) }

// writeSQL writes jambones.sql (service provider, the webhook-path accounts with their
// webhooks, the clients-path accounts and
// max(n, kn) encrypted clients, usersPerAccount per account) and kamailio.sql (the
// same users with ha1); kn is the user count of the memory measurement.
func writeSQL(dir string, n, kn int, secret, hookURL string) error {
	c, err := credcrypt.New(secret, false)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	j, err := os.Create(filepath.Join(dir, "jambones.sql"))
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer j.Close()
	jw := bufio.NewWriter(j)
	fmt.Fprintln(jw, "DELETE FROM clients WHERE account_sid LIKE 'b2000000-%';")
	fmt.Fprintln(jw, "DELETE FROM accounts WHERE account_sid LIKE 'b2000000-%' OR account_sid LIKE 'b3000000-%';")
	fmt.Fprintf(jw, "DELETE FROM service_providers WHERE service_provider_sid = '%s';\n", spSID)
	fmt.Fprintln(jw, "DELETE FROM webhooks WHERE webhook_sid LIKE 'b4000000-%';")
	fmt.Fprintf(jw, "INSERT INTO service_providers (service_provider_sid, name, root_domain) VALUES ('%s', 'bench SP', 'bench.root');\n", spSID)
	for i := 1; i <= hookAccounts; i++ {
		fmt.Fprintf(jw, "INSERT INTO webhooks (webhook_sid, url, method) VALUES ('%s', '%s', 'POST');\n", hookWebhook(i), hookURL)
		fmt.Fprintf(jw, "INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, registration_hook_sid, webhook_secret) VALUES "+
			"('%s', '%s', '%s', '%s', '%s', 'benchsecret');\n", hookAccount(i), spSID, hookRealm(i), hookRealm(i), hookWebhook(i))
	}
	n = max(n, kn)
	for i := 1; i <= n; i += usersPerAccount {
		fmt.Fprintf(jw, "INSERT INTO accounts (account_sid, service_provider_sid, name, sip_realm, registration_hook_sid, webhook_secret) VALUES "+
			"('%s', '%s', '%s', '%s', NULL, 'benchsecret');\n", clientsAccount(i), spSID, clientsRealm(i), clientsRealm(i))
	}

	k, err := os.Create(filepath.Join(dir, "kamailio.sql"))
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer k.Close()
	kw := bufio.NewWriter(k)
	fmt.Fprintln(kw, "DELETE FROM subscriber;")

	const batch = 1000
	for i := 1; i <= n; i++ {
		if (i-1)%batch == 0 {
			fmt.Fprint(jw, "INSERT INTO clients (client_sid, account_sid, username, password) VALUES\n")
		} else {
			fmt.Fprint(jw, ",\n")
		}
		enc, err := c.Encrypt(password(i))
		if err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		fmt.Fprintf(jw, "('b1000000-0000-4000-8000-%012d', '%s', '%s', '%s')", i, clientsAccount(i), userName(i), strings.ReplaceAll(enc, "'", "''"))
		if i%batch == 0 || i == n {
			fmt.Fprint(jw, ";\n")
		}
	}
	for i := 1; i <= max(n, kn); i++ {
		if (i-1)%batch == 0 {
			fmt.Fprint(kw, "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES\n")
		} else {
			fmt.Fprint(kw, ",\n")
		}
		realm := clientsRealm(i)
		ha1 := md5.Sum([]byte(userName(i) + ":" + realm + ":" + password(i)))
		ha1b := md5.Sum([]byte(userName(i) + "@" + realm + ":" + realm + ":" + password(i)))
		fmt.Fprintf(kw, "('%s', '%s', '', '%s', '%s')", userName(i), realm, hex.EncodeToString(ha1[:]), hex.EncodeToString(ha1b[:]))
		if i%batch == 0 || i == max(n, kn) {
			fmt.Fprint(kw, ";\n")
		}
	}
	if err := jw.Flush(); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	if err := kw.Flush(); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	return nil
}

// writeCSVs splits users [from, from+n) over procs CSV files (user;realm;sipp
// authentication keyword),
// so that each user is always sent by the same sipp process, hence from the same source.
// The files are written every time (a few ms): an OUT directory reused from a
// run of an earlier revision holds files of the same names with that
// revision's users (a webhook run of 2026-11-30 failed every call on the
// realms of the old single webhook account).
func writeCSVs(dir, path string, from, n, procs int) ([]string, error) {
	var files []string
	for p := 0; p < procs; p++ {
		name := filepath.Join(dir, fmt.Sprintf("users-%s-%d-%d-%d.csv", path, from, n, p))
		files = append(files, name)
		var b strings.Builder
		b.WriteString("SEQUENTIAL\n")
		for i := from + p; i < from+n; i += procs {
			realm := hookRealm(i)
			if path == "clients" {
				realm = clientsRealm(i)
			}
			fmt.Fprintf(&b, "%s;%s;[authentication username=%s password=%s]\n", userName(i), realm, userName(i), password(i))
		}
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
	}
	return files, nil
}
