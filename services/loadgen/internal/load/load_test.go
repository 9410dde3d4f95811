package load

import (
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

func TestCents(t *testing.T) {
	for _, c := range []struct {
		s string
		v int64
	}{{"0.00", 0}, {"12.30", 1230}, {"12.3", 1230}, {"12", 1200}, {"-0.05", -5}, {"10000000.00", 10_000_000_00}} {
		got, err := parseCents(c.s)
		if err != nil || got != c.v {
			t.Errorf("parseCents(%q) = %d, %v; want %d", c.s, got, err, c.v)
		}
	}
	for _, bad := range []string{"", "1.234", "x", ".5", "1.x"} {
		if _, err := parseCents(bad); err == nil {
			t.Errorf("parseCents(%q) accepted", bad)
		}
	}
	if s := cents(1230); s != "12.30" {
		t.Errorf("cents(1230) = %q", s)
	}
	if s := cents(5); s != "0.05" {
		t.Errorf("cents(5) = %q", s)
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // 1…100 ms, unsorted
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got, want := Percentiles(ds, 50, 95, 99, 100), []float64{50, 95, 99, 100}; !slices.Equal(got, want) {
		t.Errorf("Percentiles = %v, want %v", got, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Percentiles sorted its argument")
	}
	// Nearest rank: of 3 values, p50 is the 2nd and p95 the 3rd.
	three := []time.Duration{1234567 * time.Nanosecond, 10 * time.Microsecond, 3 * time.Millisecond}
	if got, want := Percentiles(three, 50, 95), []float64{1.23, 3}; !slices.Equal(got, want) {
		t.Errorf("Percentiles = %v, want %v", got, want)
	}
	if got := Percentiles(nil, 50); !slices.Equal(got, []float64{0}) {
		t.Errorf("Percentiles of nothing = %v, want [0]", got)
	}
}

func TestErrorKinds(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	if k := transportKind(refused); k != KindConnection {
		t.Errorf("refused: %s", k)
	}
	if k := kindOf(&callError{kind: KindHTTP5xx}); k != KindHTTP5xx {
		t.Errorf("5xx: %s", k)
	}
	if k := kindOf(errors.New("x")); k != KindOther {
		t.Errorf("other: %s", k)
	}
}
