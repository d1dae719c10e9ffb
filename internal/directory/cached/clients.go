package cached

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// clientTable holds the cached clients: with the stale window (an hour by
// default) every client seen in the last hour, 100,000 of them in the
// REGISTER benchmark's memory run. Each client is one string (its key and
// its data; clientEntry) with an encrypted password in binary, in one map
// for all accounts, so that a cached client costs ~110 bytes of heap
// instead of ~190 however the clients spread over accounts
// (BenchmarkClientCacheHeap; docs/performance.md, "Memory (issue 15)").
type clientTable struct {
	m    map[string]clientEntry // by account id (4 bytes) + username as looked up
	peak int                    // most entries m held since it was made

	ids      map[string]uint32 // account SID -> id, while it has cached clients
	accounts []accountRef      // by id
	free     []uint32          // ids to reuse
}

// accountRef is an account with cached clients.
type accountRef struct {
	sid     string
	clients int
}

// clientEntry is a cached client (or an unknown one). Its key in
// clientTable.m is the account's id and the username as looked up; rest is
// what follows them in the same string: the flags, the directory's spelling
// of the username when it differs (a case-insensitive match in MySQL), then
// the password, packed by packClient.
type clientEntry struct {
	rest    string
	expires time.Duration // since Directory.base
}

type clientFlags uint8

const (
	clientFound clientFlags = 1 << iota
	clientActive
	clientAppCalling
	clientQueueCalling
	clientUserCalling
	clientOtherName // the directory spells the username otherwise
	clientSealed    // the password is an encrypted value, packed
)

// idLen is the size of an account id in a key.
const idLen = 4

func newClientTable() clientTable {
	return clientTable{m: map[string]clientEntry{}, ids: map[string]uint32{}}
}

func (t *clientTable) len() int { return len(t.m) }

func (t *clientTable) get(account, user string) (clientEntry, bool) {
	id, ok := t.ids[account]
	if !ok {
		return clientEntry{}, false
	}
	var buf [64]byte
	e, ok := t.m[string(appendKey(buf[:0], id, user))] // no allocation for the lookup
	return e, ok
}

func appendKey(b []byte, id uint32, user string) []byte {
	return append(binary.LittleEndian.AppendUint32(b, id), user...)
}

// keyID is the account id of a key.
func keyID(k string) uint32 {
	return uint32(k[0]) | uint32(k[1])<<8 | uint32(k[2])<<16 | uint32(k[3])<<24
}

// id returns the account's id, assigning one when it has none.
func (t *clientTable) id(account string) uint32 {
	if id, ok := t.ids[account]; ok {
		return id
	}
	// The caller's SID may be part of a request's memory; the table keeps a copy.
	ref := accountRef{sid: strings.Clone(account)}
	var id uint32
	if n := len(t.free); n > 0 {
		id, t.free = t.free[n-1], t.free[:n-1]
		t.accounts[id] = ref
	} else {
		id = uint32(len(t.accounts))
		t.accounts = append(t.accounts, ref)
	}
	t.ids[ref.sid] = id
	return id
}

// put stores c looked up as (account, user), expiring at expires, and
// returns the entry.
func (t *clientTable) put(account, user string, c *registrar.Client, expires time.Duration) clientEntry {
	id := t.id(account)
	key, rest := packClient(id, user, c)
	if _, ok := t.m[key]; !ok {
		t.accounts[id].clients++
	}
	e := clientEntry{rest: rest, expires: expires}
	t.m[key] = e
	t.peak = max(t.peak, len(t.m))
	return e
}

// sweep removes the clients expired for longer than stale and forgets the
// accounts left without any. A map that shrank to a quarter of its peak is
// rebuilt: a Go map keeps its buckets after deletes, so after a burst of
// registrations the memory would stay until the process ends.
func (t *clientTable) sweep(now, stale time.Duration) {
	for k, e := range t.m {
		if now < e.expires+stale {
			continue
		}
		delete(t.m, k)
		id := keyID(k)
		a := &t.accounts[id]
		if a.clients--; a.clients == 0 {
			delete(t.ids, a.sid)
			*a = accountRef{}
			t.free = append(t.free, id)
		}
	}
	if t.peak >= shrinkFrom && len(t.m) < t.peak/4 {
		t.m = shrunk(t.m)
		t.peak = len(t.m)
	}
	if len(t.ids) == 0 { // ids and free are as long as the most accounts ever held
		t.accounts, t.free = nil, nil
	}
}

// shrinkFrom is the smallest peak after which a map is rebuilt when it has
// shrunk: below it the rebuild costs more than it returns.
const shrinkFrom = 1024

// shrunk returns a copy of m sized for what it holds now.
func shrunk[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// packClient returns c (nil: unknown) looked up as user in the account with
// id, as the key and the rest of one string.
func packClient(id uint32, user string, c *registrar.Client) (key, rest string) {
	var flags clientFlags
	var name, password, iv, content string
	sealed := false
	if c != nil {
		flags = clientFound
		for _, b := range [...]struct {
			on   bool
			flag clientFlags
		}{{c.Active, clientActive}, {c.AllowDirectAppCalling, clientAppCalling},
			{c.AllowDirectQueueCalling, clientQueueCalling}, {c.AllowDirectUserCalling, clientUserCalling}} {
			if b.on {
				flags |= b.flag
			}
		}
		if c.Username != user {
			flags |= clientOtherName
			name = c.Username
		}
		password = c.Password
		if iv, content, sealed = sealedParts(password); sealed {
			flags |= clientSealed
		}
	}
	var nameLen [binary.MaxVarintLen64]byte
	nl := 0
	if flags&clientOtherName != 0 {
		nl = binary.PutUvarint(nameLen[:], uint64(len(name)))
	}
	pw := len(password)
	if sealed {
		pw = (len(iv) + len(content)) / 2 // the bytes the digits spell
	}
	var b strings.Builder // one allocation for the key and the rest
	b.Grow(idLen + len(user) + 1 + nl + len(name) + pw)
	var idb [idLen]byte
	binary.LittleEndian.PutUint32(idb[:], id)
	b.Write(idb[:])
	b.WriteString(user)
	b.WriteByte(byte(flags))
	b.Write(nameLen[:nl])
	b.WriteString(name)
	if sealed {
		writeDigitBytes(&b, iv)
		writeDigitBytes(&b, content)
	} else {
		b.WriteString(password)
	}
	s := b.String()
	return s[:idLen+len(user)], s[idLen+len(user):]
}

// unpack returns a Client of its own to every caller (nil: no such client);
// user is the username it was looked up with.
func (e clientEntry) unpack(user string) *registrar.Client {
	flags := clientFlags(e.rest[0])
	if flags&clientFound == 0 {
		return nil
	}
	rest := e.rest[1:]
	name := user
	if flags&clientOtherName != 0 {
		n, w := uvarint(rest)
		name, rest = rest[w:w+int(n)], rest[w+int(n):]
	}
	password := rest
	if flags&clientSealed != 0 {
		password = unpackPassword(rest)
	}
	return &registrar.Client{
		Username:                name,
		Password:                password,
		Active:                  flags&clientActive != 0,
		AllowDirectAppCalling:   flags&clientAppCalling != 0,
		AllowDirectQueueCalling: flags&clientQueueCalling != 0,
		AllowDirectUserCalling:  flags&clientUserCalling != 0,
	}
}

func uvarint(s string) (uint64, int) {
	var v uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		v |= uint64(s[i]&0x7f) << (7 * i)
		if s[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0 // not reached: the string was written by binary.AppendUvarint
}

// An encrypted password as the api-server stores it (internal/credcrypt):
// {"iv":"<32 hex digits>","content":"<hex digits>"}. Held as the bytes the
// digits spell, half the size, when it is written exactly so (lower-case
// digits, no spaces): then unpackPassword gives back the same string.
const (
	sealedIV      = `{"iv":"`
	sealedContent = `","content":"`
	sealedEnd     = `"}`
	ivDigits      = 32
)

// sealedParts returns the iv and content digits of v when v is an
// encrypted value written exactly as unpackPassword writes it.
func sealedParts(v string) (iv, content string, ok bool) {
	rest, ok := strings.CutPrefix(v, sealedIV)
	if !ok || len(rest) < ivDigits {
		return "", "", false
	}
	iv, rest = rest[:ivDigits], rest[ivDigits:]
	if rest, ok = strings.CutPrefix(rest, sealedContent); !ok {
		return "", "", false
	}
	if content, ok = strings.CutSuffix(rest, sealedEnd); !ok {
		return "", "", false
	}
	if len(content)%2 != 0 || !lowerHex(iv) || !lowerHex(content) {
		return "", "", false
	}
	return iv, content, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// writeDigitBytes writes the bytes that lower-case hex digits spell.
func writeDigitBytes(b *strings.Builder, digits string) {
	for i := 0; i < len(digits); i += 2 {
		b.WriteByte(fromHex(digits[i])<<4 | fromHex(digits[i+1]))
	}
}

// fromHex is the value of a lower-case hex digit.
func fromHex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func unpackPassword(p string) string {
	var b strings.Builder
	b.Grow(len(sealedIV) + 2*len(p) + len(sealedContent) + len(sealedEnd))
	b.WriteString(sealedIV)
	writeHex(&b, p[:ivDigits/2])
	b.WriteString(sealedContent)
	writeHex(&b, p[ivDigits/2:])
	b.WriteString(sealedEnd)
	return b.String()
}

func writeHex(b *strings.Builder, s string) {
	const digits = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&0x0f])
	}
}
