package main

import (
	"testing"
	"time"
)

func TestStatTicks(t *testing.T) {
	// utime 1680 and stime 95570 are fields 14 and 15; the name holds
	// spaces, parentheses and what looks like fields.
	stat := "1234 (my (weird) proc) 1 2 3) S 0 0 0 0 -1 4194560 37081 22802476 0 5529 1680 95570 42606 10 -10 14 0 24\n"
	got, err := statTicks(stat)
	if err != nil || got != 1680+95570 {
		t.Errorf("statTicks = %d, %v; want %d", got, err, 1680+95570)
	}
	for _, bad := range []string{"", "1234 no parentheses S 0 0 0 0 0 0 0 0 0 0 1 2 3 4", "1234 (short) S 0 0 0"} {
		if _, err := statTicks(bad); err == nil {
			t.Errorf("statTicks(%q): no error", bad)
		}
	}
}

func TestMachineTicks(t *testing.T) {
	stat := "cpu  100 2 30 1000 50 4 5 6 70 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n"
	busy, idle, err := machineTicks(stat)
	if err != nil || busy != 100+2+30+4+5+6 || idle != 1000+50 {
		t.Errorf("machineTicks = %d, %d, %v; want 147, 1050", busy, idle, err)
	}
	if _, _, err := machineTicks("intr 1\n"); err == nil {
		t.Error("machineTicks without a cpu line: no error")
	}
}

func TestCPUPerOrder(t *testing.T) {
	before := cpuSample{procs: map[int]procTicks{
		10: {"orders", 100},
		20: {"postgres", 50},
		21: {"postgres", 70}, // exits: its time is lost
	}, busy: 1000, idle: 1000}
	after := cpuSample{procs: map[int]procTicks{
		10: {"orders", 300},
		20: {"postgres", 250},
		22: {"postgres", 100}, // starts: counts whole
		30: {"redis", 10},
	}, busy: 1900, idle: 1100}
	got := cpuPerOrder(before, after, 500*time.Millisecond, 1000)
	want := "5.10 without the load generator: postgres 3.00, orders 2.00, loadgen 0.50, redis 0.10 (machine busy 90%)"
	if got != want {
		t.Errorf("cpuPerOrder = %q\nwant          %q", got, want)
	}
}
