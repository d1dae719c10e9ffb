package native

import "github.com/emiago/sipgo/sip"

// NewParser returns the lenient SIP parser this front uses, for other fronts
// that parse SIP text themselves (drachtio) and must hand the handlers the
// same kind of message.
func NewParser() *sip.Parser { return sip.NewParser(sip.WithHeadersParsers(lenientParsers())) }
