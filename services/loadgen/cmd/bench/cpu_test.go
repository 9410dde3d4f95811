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
		10: {"orders", 100, 0, 0},
		20: {"postgres", 50, 0, 0},
		21: {"postgres", 70, 0, 0}, // exits: its time is lost
	}, busy: 1000, idle: 1000}
	after := cpuSample{procs: map[int]procTicks{
		10: {"orders", 300, 0, 0},
		20: {"postgres", 250, 0, 0},
		22: {"postgres", 100, 0, 0}, // starts: counts whole
		30: {"redis", 10, 0, 0},
	}, busy: 1900, idle: 1100}
	got := cpuPerOrder(before, after, 500*time.Millisecond, 1000)
	want := "5.10 without the load generator: postgres 3.00, orders 2.00, loadgen 0.50, redis 0.10 (machine busy 90%)"
	if got != want {
		t.Errorf("cpuPerOrder = %q\nwant          %q", got, want)
	}
}

func TestWaitPerOrder(t *testing.T) {
	before := cpuSample{procs: map[int]procTicks{
		10: {"orders", 0, 1_000_000, 100},
		20: {"postgres", 0, 5_000_000, 50},
	}}
	after := cpuSample{procs: map[int]procTicks{
		10: {"orders", 0, 3_000_000, 120},  // waited 2 ms, ran 20 times
		20: {"postgres", 0, 9_000_000, 60}, // 4 ms, 10 times
		21: {"postgres", 0, 2_000_000, 10}, // started: 2 ms, 10 times
	}}
	got := waitPerOrder(before, after, 4)
	want := "2.00: postgres 1.50, orders 0.50; 10 context switches"
	if got != want {
		t.Errorf("waitPerOrder = %q, want %q", got, want)
	}
}

func TestSchedstat(t *testing.T) {
	for line, want := range map[string][2]int64{
		"7084584 2330161 3\n": {2330161, 3},
		"":                    {0, 0},
		"7084584 2330161":     {0, 0},
		"7084584 x 3":         {0, 0},
	} {
		if w, r := schedstat(line); w != want[0] || r != want[1] {
			t.Errorf("schedstat(%q) = %d, %d; want %d, %d", line, w, r, want[0], want[1])
		}
	}
}
