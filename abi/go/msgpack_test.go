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
