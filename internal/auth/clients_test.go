package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// fakeClients is an in-memory ClientLookup keyed by account SID and username.
type fakeClients struct {
	rows  map[[2]string]*registrar.Client
	err   error
	calls [][2]string
}

func (f *fakeClients) Client(_ context.Context, accountSID, username string) (*registrar.Client, error) {
	f.calls = append(f.calls, [2]string{accountSID, username})
	if f.err != nil {
		return nil, f.err
	}
	return f.rows[[2]string{accountSID, username}], nil
}

func mustCipher(t *testing.T, secret string) *credcrypt.Cipher {
	t.Helper()
	c, err := credcrypt.New(secret, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClients_Authenticate(t *testing.T) {
	cipher := mustCipher(t, "encryption-secret")
	encrypted, err := cipher.Encrypt("1234")
	if err != nil {
		t.Fatal(err)
	}
	otherCipher := mustCipher(t, "another-secret")

	tests := []struct {
		name     string
		row      *registrar.Client // stored for acct-1/john
		cipher   *credcrypt.Cipher
		password string // the phone's password
		wantOK   bool
	}{
		{"plain password", &registrar.Client{Username: "john", Password: "1234", Active: true}, nil, "1234", true},
		{"plain password with cipher configured", &registrar.Client{Username: "john", Password: "1234", Active: true}, cipher, "1234", true},
		{"encrypted password", &registrar.Client{Username: "john", Password: encrypted, Active: true}, cipher, "1234", true},
		{"encrypted password, wrong phone password", &registrar.Client{Username: "john", Password: encrypted, Active: true}, cipher, "12345", false},
		{"encrypted password without a cipher", &registrar.Client{Username: "john", Password: encrypted, Active: true}, nil, "1234", false},
		{"encrypted password, wrong ENCRYPTION_SECRET", &registrar.Client{Username: "john", Password: encrypted, Active: true}, otherCipher, "1234", false},
		{"encrypted text used as the phone password does not pass", &registrar.Client{Username: "john", Password: encrypted, Active: true}, nil, encrypted, false},
		{"inactive client", &registrar.Client{Username: "john", Password: "1234", Active: false}, nil, "1234", false},
		{"unknown client", nil, nil, "1234", false},
		{"wrong password", &registrar.Client{Username: "john", Password: "1234", Active: true}, nil, "4321", false},
		{"empty stored password, wrong phone password", &registrar.Client{Username: "john", Password: "", Active: true}, nil, "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := &fakeClients{rows: map[[2]string]*registrar.Client{}}
			if tt.row != nil {
				lookup.rows[[2]string{"acct-1", "john"}] = tt.row
			}
			c := NewClients(lookup, tt.cipher, discardLog())
			req := authRequest(nil, "")
			req.Creds = sippCreds("john", tt.password)
			g, err := c.Authenticate(context.Background(), req)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if g.Status != 200 {
				t.Fatalf("Status = %d, want 200 (a refusal is not an error status)", g.Status)
			}
			if g.OK != tt.wantOK {
				t.Fatalf("OK = %v, want %v (msg %q)", g.OK, tt.wantOK, g.Msg)
			}
			if g.OK && g.Client != tt.row {
				t.Fatalf("Client = %+v, want the looked-up row", g.Client)
			}
			if len(lookup.calls) != 1 || lookup.calls[0] != [2]string{"acct-1", "john"} {
				t.Fatalf("lookup calls = %v", lookup.calls)
			}
		})
	}
}

func TestClients_LookupErrorReturned(t *testing.T) {
	boom := errors.New("mysql down")
	c := NewClients(&fakeClients{err: boom}, nil, discardLog())
	g, err := c.Authenticate(context.Background(), authRequest(nil, ""))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping %v", err, boom)
	}
	if g.OK {
		t.Fatalf("grant OK with a lookup error: %+v", g)
	}
}

func TestClients_SHA256Credentials(t *testing.T) {
	lookup := &fakeClients{rows: map[[2]string]*registrar.Client{
		{"acct-1", "john"}: {Username: "john", Password: "1234", Active: true},
	}}
	c := NewClients(lookup, nil, discardLog())
	req := authRequest(nil, "")
	req.Creds = sippCreds("john", "1234")
	req.Creds.Algorithm = "SHA-256"
	req.Creds.Response = "" // recomputed below
	resp, err := digestResponse(req, "1234")
	if err != nil {
		t.Fatal(err)
	}
	req.Creds.Response = resp
	if g, err := c.Authenticate(context.Background(), req); err != nil || !g.OK {
		t.Fatalf("grant %+v err %v", g, err)
	}
}

func TestClients_Password(t *testing.T) {
	cipher := mustCipher(t, "s")
	enc, _ := cipher.Encrypt("pw")
	c := NewClients(&fakeClients{}, cipher, discardLog())
	for stored, want := range map[string]string{"pw": "pw", enc: "pw", "": "", "{not json": "{not json"} {
		got, err := c.Password(stored)
		if err != nil || got != want {
			t.Errorf("Password(%q) = %q, %v; want %q", stored, got, err, want)
		}
	}
	if _, err := NewClients(&fakeClients{}, nil, discardLog()).Password(enc); err == nil {
		t.Error("Password of an encrypted value without a cipher: want error")
	}
}
