package auth

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/credcrypt"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// ClientLookup finds a clients-table row.
type ClientLookup interface {
	Client(ctx context.Context, accountSID, username string) (*registrar.Client, error)
}

// Clients checks digest credentials against the clients table, for accounts
// without a registration webhook. Passwords stored encrypted (the api-server
// format) are decrypted with cipher; plain ones are used as they are.
type Clients struct {
	lookup ClientLookup
	cipher *credcrypt.Cipher // nil when no ENCRYPTION_SECRET is configured
	log    *slog.Logger
}

// NewClients returns a clients-table authenticator.
func NewClients(lookup ClientLookup, cipher *credcrypt.Cipher, log *slog.Logger) *Clients {
	return &Clients{lookup: lookup, cipher: cipher, log: log}
}

// Authenticate implements registrar.Authenticator.
func (c *Clients) Authenticate(ctx context.Context, req registrar.AuthRequest) (registrar.Grant, error) {
	client, err := c.lookup.Client(ctx, req.Account.SID, req.Creds.Username)
	if err != nil {
		return registrar.Grant{}, fmt.Errorf("clients: lookup: %w", err)
	}
	if client == nil || !client.Active {
		return registrar.Grant{Status: 200, Msg: "unknown or inactive client"}, nil
	}
	password, err := c.Password(client.Password)
	if err != nil {
		// A row we cannot read is an operator problem, not the phone's.
		c.log.Error("clients: cannot decrypt password", "account_sid", req.Account.SID,
			"username", req.Creds.Username, "err", err)
		return registrar.Grant{Status: 200, Msg: "client password unreadable"}, nil
	}
	if !digest.Verify(req.Creds, req.Method, password) {
		return registrar.Grant{Status: 200, Msg: "invalid password", Client: client}, nil
	}
	return registrar.Grant{Status: 200, OK: true, Client: client}, nil
}

// Password returns the plain password of a stored value.
func (c *Clients) Password(stored string) (string, error) {
	if c.cipher == nil {
		if credcrypt.IsEncrypted(stored) {
			return "", fmt.Errorf("password is encrypted but ENCRYPTION_SECRET is not set")
		}
		return stored, nil
	}
	plain, _, err := c.cipher.Open(stored)
	return plain, err
}
