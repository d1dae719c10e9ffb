package digest

import "testing"

func TestParseAuthorization_TabAfterScheme(t *testing.T) {
	c, err := ParseAuthorization("Digest\tusername=\"john\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"x\"")
	if err != nil || c.Username != "john" {
		t.Fatalf("creds %+v, err %v", c, err)
	}
}
