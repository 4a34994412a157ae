package cloudevent

// How a device's MQTT 5 user properties become extension attributes.
//
// A key that already is a valid extension name (1-20 lower-case ASCII
// letters and digits) keeps it. Any other key is folded: its lower-case
// letters and digits in order (upper case lowered, everything else left
// out). A folded key of 1-20 characters is the name, unless a different
// key already has it; then, as for a folded key that is longer than 20
// characters or empty, the name is the first 12 characters of the folded
// key followed by 8 hex digits of the FNV-1a 32-bit hash of the key's
// bytes ("a-very-long-property-key-indeed" → "averylongpro" + 8 hex
// digits). Keys that are valid names are placed first, then the others in
// wire order, so the plain folded name goes to the first of them.
//
// A property is dropped, never silently (Message.DroppedProperty), when
// its name is ReservedForGateway (DropReserved), when its key repeats an
// earlier property's key (DropDuplicate: the first value wins), or when
// even the hashed name is taken by a different key (DropCollision).

import (
	"hash/fnv"
)

// Why a user property did not become an extension (the reason given to
// Message.DroppedProperty).
const (
	DropReserved  = "reserved"  // its name is ReservedForGateway
	DropDuplicate = "duplicate" // an earlier property has the same key
	DropCollision = "collision" // a different key took its name, even hashed
)

// hashedPrefix is how much of a folded key a hashed name keeps.
const hashedPrefix = MaxExtensionName - 8

// appendFolded appends the lower-case ASCII letters and digits of key to
// dst, upper case lowered, everything else left out.
func appendFolded(dst []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			dst = append(dst, c)
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		}
	}
	return dst
}

// hashedName is the name of a key whose folded form (f) is cut, empty or
// taken: up to hashedPrefix characters of f and 8 hex digits of the key's
// FNV-1a hash.
func hashedName(f []byte, key string) string {
	const hex = "0123456789abcdef"
	h := fnv.New32a()
	h.Write([]byte(key))
	sum := h.Sum32()
	b := make([]byte, 0, MaxExtensionName)
	b = append(b, f[:min(len(f), hashedPrefix)]...)
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hex[sum>>shift&0xf])
	}
	return string(b)
}

// propNames assigns the extension names of one message's properties.
type propNames struct {
	props []Property
	names []string // names[i]: the name of props[i]; "" when dropped
	why   []string // why[i]: the drop reason of props[i]
	// owner finds the property that has a name: a linear scan of names
	// for a few properties, a map for many (a device may send thousands).
	owner map[string]int
}

// maxScanned is the number of properties above which names are kept in a
// map rather than searched.
const maxScanned = 16

// foldProperties appends the extensions of m's user properties to e in
// wire order and reports each dropped one to m.DroppedProperty (if set).
func foldProperties(e *Event, m *Message) {
	props := m.UserProperties
	if len(props) == 0 {
		return
	}
	var stackNames, stackWhy [maxScanned]string
	pn := propNames{props: props, names: stackNames[:0], why: stackWhy[:0]}
	if len(props) > maxScanned {
		pn.names = make([]string, 0, len(props))
		pn.why = make([]string, 0, len(props))
		pn.owner = make(map[string]int, len(props))
	}
	pn.names = pn.names[:len(props)]
	pn.why = pn.why[:len(props)]
	// Keys that are valid names first, so they keep their names whatever
	// the order; then the folded ones in wire order.
	for i, p := range props {
		if ValidExtensionName(p.Key) {
			pn.assign(i, p.Key)
		}
	}
	var fold [64]byte
	for i, p := range props {
		if ValidExtensionName(p.Key) {
			continue
		}
		f := appendFolded(fold[:0], p.Key)
		if len(f) > 0 && len(f) <= MaxExtensionName && !pn.assign(i, string(f)) {
			continue
		}
		pn.assign(i, hashedName(f, p.Key))
	}
	for i, p := range props {
		if pn.names[i] != "" {
			e.Extensions = append(e.Extensions, Extension{Name: pn.names[i], Value: String(SanitizeString(p.Value))})
		} else if m.DroppedProperty != nil {
			m.DroppedProperty(*m, p, pn.why[i])
		}
	}
}

// assign gives props[i] name, unless the name is reserved or taken (by
// the same key: a duplicate; by a different one: a collision), and records
// why not. It reports whether a different key has the name.
func (pn *propNames) assign(i int, name string) (takenByOther bool) {
	if ReservedForGateway(name) {
		pn.why[i] = DropReserved
		return false
	}
	j, taken := pn.find(name)
	switch {
	case !taken:
		pn.names[i] = name
		if pn.owner != nil {
			pn.owner[name] = i
		}
		return false
	case pn.props[j].Key == pn.props[i].Key:
		pn.why[i] = DropDuplicate
		return false
	}
	pn.why[i] = DropCollision
	return true
}

// find returns the property that has name.
func (pn *propNames) find(name string) (int, bool) {
	if pn.owner != nil {
		j, ok := pn.owner[name]
		return j, ok
	}
	for j, n := range pn.names {
		if n == name {
			return j, true
		}
	}
	return 0, false
}
