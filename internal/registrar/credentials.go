package registrar

import (
	"context"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/digest"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/nonce"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/sipfront"
)

// credVerdict is how the credentials stage judged a request's Authorization.
type credVerdict uint8

const (
	credNone       credVerdict = iota // no Authorization header
	credMalformed                     // unparsable: 400
	credNotOffered                    // an algorithm we did not challenge with
	credInvalid                       // a nonce we did not issue
	credStale                         // our nonce, past NONCE_TTL
	credOtherRealm                    // digest realm is not the challenged one: 403
	credValid                         // nonce valid, realm ours: the count is claimed
)

// claimState is how far the claim of the request's (nonce, nc) got.
type claimState uint8

const (
	claimNotMade claimState = iota // Nonces cannot split: challenge claims whole
	claimPending                   // claimed here; key still to claim cluster-wide
	claimMade                      // claimed everywhere it must be
	claimRefused                   // a replay (err says why)
)

// authState is the credentials stage's finding, acted on by challenge.
type authState struct {
	verdict  credVerdict
	creds    *digest.Credentials
	parseErr error
	claim    claimState
	claimKey string
	claimErr error
}

// credentials reads the Authorization header once, judges its nonce and
// realm, and claims the nonce count on this instance. It answers nothing:
// challenge, at its place after the account and device checks, answers on
// the verdict, so every answer and its order stay as without this stage.
// Claiming this early lets the cache stage carry the cluster-wide claim on
// the round trip that reads the binding (one Redis round trip fewer per
// registration). A count is therefore also used up by a request refused
// before challenge (unknown realm, device limit, a store error): the client
// gets a fresh challenge on its next attempt, never a lock-out
// (docs/security.md).
type credentials struct{ d Deps }

func (c credentials) Serve(ctx context.Context, r *Registration, next Handler) *sipfront.Response {
	h := r.Req.Msg.GetHeader("Authorization")
	if h == nil {
		return next.Handle(ctx, r)
	}
	a := &r.auth
	creds, err := digest.ParseAuthorization(h.Value())
	switch {
	case err != nil:
		a.verdict, a.parseErr = credMalformed, err
		return next.Handle(ctx, r)
	case !offered(c.d.Algorithms, creds.Algorithm):
		a.verdict = credNotOffered
	default:
		switch c.d.Nonces.Check(creds.Nonce) {
		case nonce.Invalid:
			a.verdict = credInvalid
		case nonce.Stale:
			a.verdict = credStale
		default:
			// We challenge with the To host as realm: credentials of
			// another realm (another account, possibly sharing a service
			// provider's webhook) must not bind this AoR. The client
			// echoes the challenge's realm verbatim.
			if creds.Realm != r.Realm {
				a.verdict = credOtherRealm
			} else {
				a.verdict = credValid
			}
		}
	}
	a.creds = creds
	if a.verdict == credValid {
		if sn, ok := c.d.Nonces.(SplitNonces); ok {
			key, err := sn.ClaimLocal(creds.Nonce, creds.NC)
			switch {
			case err != nil:
				a.claim, a.claimErr = claimRefused, err
			case key == "":
				a.claim = claimMade
			default:
				a.claim, a.claimKey = claimPending, key
			}
		}
	}
	return next.Handle(ctx, r)
}

// finishClaim completes the claim of a valid Authorization: what the
// credentials and cache stages could not do is done now.
func (c challenge) finishClaim(ctx context.Context, r *Registration) error {
	a := &r.auth
	switch a.claim {
	case claimMade:
		return nil
	case claimRefused:
		return a.claimErr
	case claimPending:
		return c.d.Nonces.(SplitNonces).ClaimShared(ctx, a.claimKey)
	default:
		return c.d.Nonces.Claim(ctx, a.creds.Nonce, a.creds.NC)
	}
}

// tookClaim records the answer of a Lookup that carried the claim.
func (a *authState) tookClaim(claimed bool) {
	if claimed {
		a.claim = claimMade
	} else {
		a.claim, a.claimErr = claimRefused, nonce.ErrReplay
	}
}
