package spindle

import (
	"math"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	values := []any{
		nil, true, false, int64(0), int64(-1), int64(-33), int64(200), int64(70000),
		int64(math.MaxInt64), int64(math.MinInt64), 3.0, -0.5, "", "héllo", []byte{0, 255},
		[]any{}, []any{int64(1), "two", []any{nil}},
		Map{{"a", int64(1)}, {int64(2), Map{}}, {true, []byte("x")}},
	}
	for _, v := range values {
		b, err := Encode(v)
		if err != nil {
			t.Fatalf("encode %#v: %v", v, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %#v: %v", v, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip of %#v gave %#v", v, got)
		}
	}
	if _, err := Decode([]byte{0xcd, 1}); err == nil {
		t.Fatal("truncated input decoded")
	}
}

func TestEveryIntegerKindEncodes(t *testing.T) {
	values := []any{int(-5), int8(-5), int16(-500), int32(-70000), int64(-5), uint(5), uint8(200),
		uint16(60000), uint32(4000000000), uint64(math.MaxInt64)}
	for _, v := range values {
		b, err := Encode(v)
		if err != nil {
			t.Fatalf("encode %T %v: %v", v, v, err)
		}
		got, err := Decode(b)
		want := reflect.ValueOf(v).Convert(reflect.TypeOf(int64(0))).Interface()
		if err != nil || got != want {
			t.Fatalf("%T %v came back as %#v (%v)", v, v, got, err)
		}
	}
	for _, v := range []any{uint(math.MaxUint64), uint64(math.MaxInt64) + 1} {
		if _, err := Encode(v); err == nil {
			t.Fatalf("%T %v above MaxInt64 encoded", v, v)
		}
	}
}

func TestNestingIsBoundedAndCyclesAreErrors(t *testing.T) {
	nested := func(levels int) any {
		var v any = int64(0)
		for i := 0; i < levels; i++ {
			v = []any{v}
		}
		return v
	}
	b, err := Encode(nested(MaxDepth))
	if err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
	if _, err := Decode(b); err != nil {
		t.Fatalf("%d levels do not decode: %v", MaxDepth, err)
	}
	if _, err := Encode(nested(MaxDepth + 1)); err == nil {
		t.Fatal("a value nested deeper than MaxDepth encoded")
	}
	cycle := []any{nil}
	cycle[0] = cycle
	if _, err := Encode(cycle); err == nil {
		t.Fatal("a slice that contains itself encoded")
	}
	m := Map{{"self", nil}}
	m[0].Value = m
	if _, err := Encode(map[string]any{"m": m}); err == nil {
		t.Fatal("a map that contains itself encoded")
	}
}
