package store

import (
	"encoding/json"

	"github.com/jambonz-go/sbc-sip-sidecar/internal/jsonwire"
	"github.com/jambonz-go/sbc-sip-sidecar/internal/registrar"
)

// The binding's JSON (`user:<aor>`, docs/contract.md) is written and read
// for every registration; encoding/json's reflection was a measurable share
// of the service's CPU (docs/performance.md, "JSON of the binding and the
// event"). AppendBinding and DecodeBinding do the same without it, held to
// encoding/json's bytes and results by TestBindingJSON_* and the fuzz
// targets FuzzAppendBinding and FuzzDecodeBinding.

// EncodeBinding returns b's JSON (AppendBinding) in a buffer of the size it
// needs unless a string must be escaped.
func EncodeBinding(b *registrar.Binding) []byte {
	n := bindingFrame + len(b.Contact) + len(b.SBCAddress) + len(b.PrivateSBCAddress) + len(b.Protocol) +
		len(b.Proxy) + len(b.CallHook) + len(b.CallStatusHook) + len(b.CallID)
	return AppendBinding(make([]byte, 0, n), b)
}

// bindingFrame is the length of a binding's JSON without its strings, at
// most (every member present, the longest numbers).
const bindingFrame = 272

// AppendBinding appends b's JSON, byte for byte as json.Marshal(b) writes
// it (field order, omitted empty fields, escaping).
func AppendBinding(dst []byte, b *registrar.Binding) []byte {
	dst = append(dst, `{"contact":`...)
	dst = jsonwire.AppendString(dst, b.Contact)
	dst = append(dst, `,"sbcAddress":`...)
	dst = jsonwire.AppendString(dst, b.SBCAddress)
	if b.PrivateSBCAddress != "" {
		dst = append(dst, `,"privateSbcAddress":`...)
		dst = jsonwire.AppendString(dst, b.PrivateSBCAddress)
	}
	dst = append(dst, `,"protocol":`...)
	dst = jsonwire.AppendString(dst, b.Protocol)
	dst = append(dst, `,"proxy":`...)
	dst = jsonwire.AppendString(dst, b.Proxy)
	if b.CallHook != "" {
		dst = append(dst, `,"callHook":`...)
		dst = jsonwire.AppendString(dst, b.CallHook)
	}
	if b.CallStatusHook != "" {
		dst = append(dst, `,"callStatusHook":`...)
		dst = jsonwire.AppendString(dst, b.CallStatusHook)
	}
	dst = append(dst, `,"allow_direct_app_calling":`...)
	dst = jsonwire.AppendBool(dst, b.AllowDirectAppCalling)
	dst = append(dst, `,"allow_direct_queue_calling":`...)
	dst = jsonwire.AppendBool(dst, b.AllowDirectQueueCalling)
	dst = append(dst, `,"allow_direct_user_calling":`...)
	dst = jsonwire.AppendBool(dst, b.AllowDirectUserCalling)
	dst = append(dst, `,"expiryTime":`...)
	dst = jsonwire.AppendInt(dst, b.ExpiryTime)
	if b.CallID != "" {
		dst = append(dst, `,"callId":`...)
		dst = jsonwire.AppendString(dst, b.CallID)
	}
	if b.CSeq != 0 {
		dst = append(dst, `,"cseq":`...)
		dst = jsonwire.AppendUint(dst, uint64(b.CSeq))
	}
	return append(dst, '}')
}

// bindingFields are the binding's JSON names, in the order of
// decodeBinding's switch.
var bindingFields = []string{
	"contact", "sbcAddress", "privateSbcAddress", "protocol", "proxy", "callHook", "callStatusHook",
	"allow_direct_app_calling", "allow_direct_queue_calling", "allow_direct_user_calling",
	"expiryTime", "callId", "cseq",
}

// DecodeBinding returns the binding in data, exactly as json.Unmarshal
// into a zero Binding would; its errors are json.Unmarshal's own.
func DecodeBinding[T jsonwire.Text](data T) (registrar.Binding, error) {
	b, err := decodeBinding(data)
	if err != nil {
		// encoding/json's words for what is wrong, as logged before. Should
		// the two ever disagree (the fuzz target says they do not), its
		// result wins.
		var v registrar.Binding
		err = json.Unmarshal([]byte(data), &v)
		return v, err
	}
	return b, nil
}

func decodeBinding[T jsonwire.Text](data T) (registrar.Binding, error) {
	var b registrar.Binding
	r := jsonwire.NewReader(data)
	if r.Object() {
		for {
			key, ok := r.Next()
			if !ok {
				break
			}
			switch jsonwire.Match(key, bindingFields) {
			case 0:
				r.String(&b.Contact)
			case 1:
				r.String(&b.SBCAddress)
			case 2:
				r.String(&b.PrivateSBCAddress)
			case 3:
				r.String(&b.Protocol)
			case 4:
				r.String(&b.Proxy)
			case 5:
				r.String(&b.CallHook)
			case 6:
				r.String(&b.CallStatusHook)
			case 7:
				r.Bool(&b.AllowDirectAppCalling)
			case 8:
				r.Bool(&b.AllowDirectQueueCalling)
			case 9:
				r.Bool(&b.AllowDirectUserCalling)
			case 10:
				r.Int64(&b.ExpiryTime)
			case 11:
				r.String(&b.CallID)
			case 12:
				r.Uint32(&b.CSeq)
			default:
				r.Skip()
			}
		}
	}
	return b, r.Close()
}
