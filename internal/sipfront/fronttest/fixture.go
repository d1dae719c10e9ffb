package fronttest

import "strings"

// rawRegister is a REGISTER from 127.0.0.1:5090 (tests replace that address
// with their socket's): %s are the branch/Call-ID suffix and the To header.
const rawRegister = "REGISTER sip:jambonz.org SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-native-%s;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: <sip:john@jambonz.org>;tag=abc\r\n" +
	"To: %s\r\n" +
	"Call-ID: call-%s@127.0.0.1\r\n" +
	"CSeq: 1 REGISTER\r\n" +
	"Contact: <sip:john@127.0.0.1:5090>\r\n" +
	"Expires: 3600\r\n" +
	"Content-Length: 0\r\n\r\n"

// Register is the text of a REGISTER for john@jambonz.org with branch and
// Call-ID made from id (Call-ID call-<id>@127.0.0.1) and the To header to.
func Register(id, to string) string {
	r := strings.Replace(rawRegister, "%s", id, 1)
	r = strings.Replace(r, "%s", to, 1)
	return strings.Replace(r, "%s", id, 1)
}
