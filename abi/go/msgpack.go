package spindle

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"unicode/utf8"
)

// KV is one key/value pair of a Map.
type KV struct {
	Key   any
	Value any
}

// Map is a Spindle map: pairs in order, keys of any type. Decode returns maps as Map.
type Map []KV

// Get returns the value under string key k.
func (m Map) Get(k string) (any, bool) {
	for _, kv := range m {
		if s, ok := kv.Key.(string); ok && s == k {
			return kv.Value, true
		}
	}
	return nil, false
}

// Encode writes v as MessagePack. Values: nil, bool, integers of any Go integer type (as
// int64: an unsigned one above MaxInt64 is an error), float64 (float32 widened), string (must
// be UTF-8), []byte, []any, Map, map[string]any (keys sorted). Arrays and maps nest at most
// MaxDepth levels (a value that contains itself is an error, not an endless recursion).
func Encode(v any) ([]byte, error) {
	var out []byte
	err := encode(&out, v, 0)
	return out, err
}

// MaxDepth is how deeply arrays and maps may nest in a Spindle value.
const MaxDepth = 128

func be(out *[]byte, marker byte, v uint64, width int) {
	*out = append(*out, marker)
	for i := width - 1; i >= 0; i-- {
		*out = append(*out, byte(v>>(8*i)))
	}
}

func encodeInt(out *[]byte, i int64) {
	switch {
	case i >= 0 && i <= 0x7f:
		*out = append(*out, byte(i))
	case i < 0 && i >= -32:
		*out = append(*out, byte(int8(i)))
	case i > 0 && i <= 0xff:
		be(out, 0xcc, uint64(i), 1)
	case i > 0 && i <= 0xffff:
		be(out, 0xcd, uint64(i), 2)
	case i > 0 && i <= 0xffffffff:
		be(out, 0xce, uint64(i), 4)
	case i > 0:
		be(out, 0xcf, uint64(i), 8)
	case i >= -0x80:
		be(out, 0xd0, uint64(i)&0xff, 1)
	case i >= -0x8000:
		be(out, 0xd1, uint64(i)&0xffff, 2)
	case i >= -0x80000000:
		be(out, 0xd2, uint64(i)&0xffffffff, 4)
	default:
		be(out, 0xd3, uint64(i), 8)
	}
}

func encodeUint(out *[]byte, x uint64) error {
	if x > math.MaxInt64 {
		return fmt.Errorf("integer %d does not fit a signed 64-bit integer", x)
	}
	encodeInt(out, int64(x))
	return nil
}

func head(out *[]byte, n int, fix int, m8, m16, m32 byte) {
	switch {
	case fix >= 0 && n <= 31:
		*out = append(*out, byte(fix|n))
	case n <= 0xff:
		be(out, m8, uint64(n), 1)
	case n <= 0xffff:
		be(out, m16, uint64(n), 2)
	default:
		be(out, m32, uint64(n), 4)
	}
}

func collection(out *[]byte, n int, fix byte, m16, m32 byte) {
	switch {
	case n <= 15:
		*out = append(*out, fix|byte(n))
	case n <= 0xffff:
		be(out, m16, uint64(n), 2)
	default:
		be(out, m32, uint64(n), 4)
	}
}

func encode(out *[]byte, v any, depth int) error {
	switch v.(type) {
	case []any, Map, map[string]any:
		if depth >= MaxDepth {
			return fmt.Errorf("a value nests arrays or maps deeper than %d levels", MaxDepth)
		}
	}
	switch x := v.(type) {
	case nil:
		*out = append(*out, 0xc0)
	case bool:
		if x {
			*out = append(*out, 0xc3)
		} else {
			*out = append(*out, 0xc2)
		}
	case int:
		encodeInt(out, int64(x))
	case int8:
		encodeInt(out, int64(x))
	case int16:
		encodeInt(out, int64(x))
	case int32:
		encodeInt(out, int64(x))
	case int64:
		encodeInt(out, x)
	case uint8:
		encodeInt(out, int64(x))
	case uint16:
		encodeInt(out, int64(x))
	case uint32:
		encodeInt(out, int64(x))
	case uint:
		return encodeUint(out, uint64(x))
	case uint64:
		return encodeUint(out, x)
	case float32:
		be(out, 0xcb, math.Float64bits(float64(x)), 8)
	case float64:
		be(out, 0xcb, math.Float64bits(x), 8)
	case string:
		if !utf8.ValidString(x) {
			return errors.New("a string is not UTF-8 (send bytes as []byte)")
		}
		head(out, len(x), 0xa0, 0xd9, 0xda, 0xdb)
		*out = append(*out, x...)
	case []byte:
		head(out, len(x), -1, 0xc4, 0xc5, 0xc6)
		*out = append(*out, x...)
	case []any:
		collection(out, len(x), 0x90, 0xdc, 0xdd)
		for _, e := range x {
			if err := encode(out, e, depth+1); err != nil {
				return err
			}
		}
	case Map:
		collection(out, len(x), 0x80, 0xde, 0xdf)
		for _, kv := range x {
			if err := encode(out, kv.Key, depth+1); err != nil {
				return err
			}
			if err := encode(out, kv.Value, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := make(Map, 0, len(x))
		for _, k := range keys {
			m = append(m, KV{k, x[k]})
		}
		return encode(out, m, depth)
	default:
		return fmt.Errorf("a %T cannot be a Spindle value", v)
	}
	return nil
}

// Decode reads one MessagePack value: nil, bool, int64, float64, string, []byte, []any, Map.
func Decode(b []byte) (any, error) {
	d := decoder{b: b}
	v, err := d.value(0)
	if err == nil && d.pos != len(b) {
		err = fmt.Errorf("bytes left over after the value at byte %d", d.pos)
	}
	return v, err
}

type decoder struct {
	b   []byte
	pos int
}

var errTruncated = errors.New("MessagePack ends inside a value")

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.pos < n {
		return nil, errTruncated
	}
	s := d.b[d.pos : d.pos+n]
	d.pos += n
	return s, nil
}

func (d *decoder) uint(width int) (uint64, error) {
	s, err := d.take(width)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (d *decoder) str(n int) (any, error) {
	s, err := d.take(n)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(s) {
		return nil, errors.New("a MessagePack str is not UTF-8")
	}
	return string(s), nil
}

func (d *decoder) bin(n int) (any, error) {
	s, err := d.take(n)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, s...), nil
}

func (d *decoder) array(n int, depth int) (any, error) {
	if depth >= 128 {
		return nil, errors.New("MessagePack nested too deeply")
	}
	a := make([]any, 0, min(n, len(d.b)-d.pos))
	for i := 0; i < n; i++ {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	return a, nil
}

func (d *decoder) dict(n int, depth int) (any, error) {
	if depth >= 128 {
		return nil, errors.New("MessagePack nested too deeply")
	}
	m := make(Map, 0, min(n, len(d.b)-d.pos))
	for i := 0; i < n; i++ {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m = append(m, KV{k, v})
	}
	return m, nil
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func (d *decoder) value(depth int) (any, error) {
	mb, err := d.take(1)
	if err != nil {
		return nil, err
	}
	m := mb[0]
	switch {
	case m <= 0x7f:
		return int64(m), nil
	case m >= 0xe0:
		return int64(int8(m)), nil
	case m&0xf0 == 0x80:
		return d.dict(int(m&0x0f), depth)
	case m&0xf0 == 0x90:
		return d.array(int(m&0x0f), depth)
	case m&0xe0 == 0xa0:
		return d.str(int(m & 0x1f))
	}
	switch m {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6:
		n, err := d.uint(1 << (m - 0xc4))
		if err != nil {
			return nil, err
		}
		return d.bin(int(n))
	case 0xd9, 0xda, 0xdb:
		n, err := d.uint(1 << (m - 0xd9))
		if err != nil {
			return nil, err
		}
		return d.str(int(n))
	case 0xca:
		v, err := d.uint(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		v, err := d.uint(8)
		return math.Float64frombits(v), err
	case 0xcc, 0xcd, 0xce, 0xcf:
		v, err := d.uint(1 << (m - 0xcc))
		if err == nil && v > math.MaxInt64 {
			err = errors.New("a MessagePack integer does not fit a signed 64-bit integer")
		}
		return int64(v), err
	case 0xd0:
		v, err := d.uint(1)
		return int64(int8(v)), err
	case 0xd1:
		v, err := d.uint(2)
		return int64(int16(v)), err
	case 0xd2:
		v, err := d.uint(4)
		return int64(int32(v)), err
	case 0xd3:
		v, err := d.uint(8)
		return int64(v), err
	case 0xdc, 0xdd:
		n, err := d.uint(2 << (m - 0xdc))
		if err != nil {
			return nil, err
		}
		return d.array(int(n), depth)
	case 0xde, 0xdf:
		n, err := d.uint(2 << (m - 0xde))
		if err != nil {
			return nil, err
		}
		return d.dict(int(n), depth)
	}
	return nil, fmt.Errorf("MessagePack marker %#02x is not a Spindle value", m)
}
