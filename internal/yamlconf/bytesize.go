package yamlconf

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes, the type of every size setting. In YAML it
// is an integer or a string with a unit: "512MiB", "64KB", "1GB", "4096",
// "1.5GiB". Decimal units (KB, MB, GB, TB) are powers of 1000 and binary
// units (KiB, MiB, GiB, TiB) powers of 1024; "B" or no unit means bytes.
// Units are case-insensitive.
type ByteSize int64

var byteUnits = map[string]float64{
	"":    1,
	"b":   1,
	"k":   1e3,
	"kb":  1e3,
	"m":   1e6,
	"mb":  1e6,
	"g":   1e9,
	"gb":  1e9,
	"t":   1e12,
	"tb":  1e12,
	"ki":  1 << 10,
	"kib": 1 << 10,
	"mi":  1 << 20,
	"mib": 1 << 20,
	"gi":  1 << 30,
	"gib": 1 << 30,
	"ti":  1 << 40,
	"tib": 1 << 40,
}

const byteSizeForms = "want a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"

// ParseByteSize parses a size such as "512MiB", "64KB" or "1024".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || (i == 0 && (t[i] == '-' || t[i] == '+'))) {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("invalid byte size %q: %s", s, byteSizeForms)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if mult != 1 && (n > math.MaxInt64/int64(mult) || n < math.MinInt64/int64(mult)) {
			return 0, fmt.Errorf("invalid byte size %q: too large", s)
		}
		return ByteSize(n * int64(mult)), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size %q: %s", s, byteSizeForms)
	}
	v := f * mult
	if math.IsNaN(v) || v >= math.MaxInt64 || v <= math.MinInt64 {
		return 0, fmt.Errorf("invalid byte size %q: too large", s)
	}
	return ByteSize(math.Round(v)), nil
}

// String formats the size with the largest binary unit that divides it.
func (s ByteSize) String() string {
	units := []struct {
		name string
		n    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// UnmarshalYAML accepts an integer or a size string. Its error is an
// *Error at n, so Decode reports it with the field's path and position.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Msg: "invalid byte size: want an integer or a string like \"512MiB\", got " + describe(n)}
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &Error{Msg: err.Error()}
	}
	*s = v
	return nil
}

// MarshalYAML writes the size in the form String returns.
func (s ByteSize) MarshalYAML() (any, error) { return s.String(), nil }

// JSONSchema describes the YAML form of a size for editors: a
// non-negative integer, or a string with a unit as ParseByteSize takes it
// (no size setting may be negative).
func (ByteSize) JSONSchema() map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "integer", "minimum": 0},
		map[string]any{"type": "string", "pattern": `^\s*\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*([kKmMgGtT][iI]?[bB]?|[bB])?\s*$`},
	}}
}

// JSONSchemaKind names the type in the configuration reference.
func (ByteSize) JSONSchemaKind() string { return "byte size" }
