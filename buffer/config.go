package buffer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Policy says what Append does when the buffer is full.
type Policy string

const (
	// DropOldest makes room by deleting the oldest records, across all
	// queues. It is the default.
	DropOldest Policy = "drop_oldest"
	// Reject refuses the Append with ErrFull and stores nothing.
	Reject Policy = "reject"
)

// ByteSize is a number of bytes. In YAML it is an integer or a string with a
// unit: "512MiB", "64KB", "1GB", "4096", "1.5GiB". Decimal units (KB, MB, GB,
// TB) are powers of 1000 and binary units (KiB, MiB, GiB, TiB) powers of 1024;
// "B" or no unit means bytes. Units are case-insensitive.
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
		return 0, fmt.Errorf("invalid byte size %q: want a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if mult != 1 && (n > math.MaxInt64/int64(mult) || n < math.MinInt64/int64(mult)) {
			return 0, fmt.Errorf("invalid byte size %q: too large", s)
		}
		return ByteSize(n * int64(mult)), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid byte size %q: want a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
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

// UnmarshalYAML accepts an integer or a size string.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("invalid byte size: want an integer or a string like \"512MiB\"")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalYAML writes the size in the form String returns.
func (s ByteSize) MarshalYAML() (any, error) { return s.String(), nil }

// Config configures a Buffer. It is the "buffer" section of edgegate.yaml.
type Config struct {
	// Dir is the directory of the Badger database. Required.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the logical bytes (record payloads) stored across all
	// queues. Default 512MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxAge is how long a record is kept; older records are removed and
	// counted as expired. Default 168h.
	MaxAge time.Duration `yaml:"max_age"`
	// Overflow is what Append does when MaxBytes would be exceeded:
	// drop_oldest (default) or reject.
	Overflow Policy `yaml:"overflow"`
	// MinFreeBytes is the free space below which the file system of Dir is
	// considered full: Append then fails with ErrFull whatever the policy.
	// Default 64MiB.
	MinFreeBytes ByteSize `yaml:"min_free_bytes"`
}

// MinFreeFloor is the smallest min_free_bytes accepted. Measured on a
// 64 MiB file system filled at 18k events/s: 8 MiB crashed Badger, 16 MiB
// and more held.
const MinFreeFloor ByteSize = 16 << 20

// DefaultConfig returns the defaults, with Dir unset.
func DefaultConfig() Config {
	return Config{
		MaxBytes:     512 << 20,
		MaxAge:       168 * time.Hour,
		Overflow:     DropOldest,
		MinFreeBytes: 64 << 20,
	}
}

// Validate reports every problem in c, each as "field: what is wrong".
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Dir) == "" {
		errs = append(errs, errors.New("dir: must be set"))
	}
	if c.MaxBytes <= 0 {
		errs = append(errs, errors.New("max_bytes: must be > 0"))
	}
	if c.MaxAge <= 0 {
		errs = append(errs, errors.New("max_age: must be > 0"))
	}
	switch c.Overflow {
	case DropOldest, Reject:
	default:
		errs = append(errs, fmt.Errorf("overflow: must be %q or %q, not %q", DropOldest, Reject, c.Overflow))
	}
	if c.MinFreeBytes < MinFreeFloor {
		errs = append(errs, fmt.Errorf("min_free_bytes: must be at least %s: Badger needs room to flush and compact after appends stop (a full disk kills it with SIGBUS)", MinFreeFloor))
	}
	return errors.Join(errs...)
}
