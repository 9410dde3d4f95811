package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Report is what a run sustained. The first keys are the load generator
// contract's (DESIGN.md); the rest add detail.
type Report struct {
	OrdersCreated int64            `json:"orders_created"`
	OrdersSettled int64            `json:"orders_settled"`
	SettledPerSec float64          `json:"settled_per_sec"`
	CreateP50Ms   float64          `json:"create_p50_ms"`
	CreateP99Ms   float64          `json:"create_p99_ms"`
	SettleP50Ms   float64          `json:"settle_p50_ms"`
	SettleP95Ms   float64          `json:"settle_p95_ms"`
	SettleP99Ms   float64          `json:"settle_p99_ms"`
	Errors        map[string]int64 `json:"errors"`
	InvariantsOK  bool             `json:"invariants_ok"`

	CreateP95Ms     float64  `json:"create_p95_ms"`
	OrdersSent      int64    `json:"orders_sent"`
	OrdersUnsettled int64    `json:"orders_unsettled"`
	OrdersFinished  int64    `json:"orders_finished"`
	OrdersCancelled int64    `json:"orders_cancelled"`
	CreatedPerSec   float64  `json:"created_per_sec"`
	DurationSec     float64  `json:"duration_sec"`
	Users           int      `json:"users"`
	UserBase        int64    `json:"user_base"`
	Workers         int      `json:"workers"`
	Rate            float64  `json:"rate"`
	Violations      []string `json:"violations,omitempty"`
	Warnings        []string `json:"warnings,omitempty"`
}

// OK reports whether the run passed: the invariants hold and every order
// settled.
func (r *Report) OK() bool { return r.InvariantsOK && r.OrdersUnsettled == 0 }

func (r *run) report(creates []time.Duration, start, sendEnd time.Time) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{
		OrdersCreated:   r.accepted.Load(),
		OrdersSettled:   r.settled.Load(),
		OrdersSent:      r.sent.Load(),
		OrdersFinished:  r.finished,
		OrdersCancelled: r.cancelled,
		Errors:          map[string]int64{},
		InvariantsOK:    true,
		DurationSec:     round(sendEnd.Sub(start).Seconds()),
		Users:           r.cfg.Users,
		UserBase:        r.cfg.UserBase,
		Workers:         r.cfg.Workers,
		Rate:            r.cfg.Rate,
	}
	rep.OrdersUnsettled = rep.OrdersCreated - rep.OrdersSettled
	for k, v := range r.errors {
		rep.Errors[k] = v
	}
	if s := sendEnd.Sub(start).Seconds(); s > 0 {
		rep.CreatedPerSec = round(float64(rep.OrdersCreated) / s)
	}
	// Throughput from the server's own clock: first order created to last
	// order settled.
	if span := r.lastSettle.Sub(r.firstNew).Seconds(); span > 0 {
		rep.SettledPerSec = round(float64(rep.OrdersSettled) / span)
	}
	c := Percentiles(creates, 50, 95, 99)
	rep.CreateP50Ms, rep.CreateP95Ms, rep.CreateP99Ms = c[0], c[1], c[2]
	s := Percentiles(r.settles, 50, 95, 99)
	rep.SettleP50Ms, rep.SettleP95Ms, rep.SettleP99Ms = s[0], s[1], s[2]
	return rep
}

// check verifies the invariants through the API and records violations:
// every order is terminal, every balance is the balance after the top-up
// minus the FINISHED orders, no balance is negative, and each order settled
// as its amount said it would.
func (r *run) check(ctx context.Context, rep *Report) {
	fail := func(format string, args ...any) {
		rep.InvariantsOK = false
		if len(rep.Violations) < 20 {
			rep.Violations = append(rep.Violations, fmt.Sprintf(format, args...))
		}
	}
	if rep.OrdersUnsettled > 0 {
		fail("%d orders still NEW %s after the last one was placed", rep.OrdersUnsettled, r.cfg.SettleTimeout)
	}
	var wrong, unknownNew int
	for _, u := range r.users {
		u.mu.Lock()
		wrong += u.wrong
		finished, baseline, ambiguous, known := u.finished, u.baseline, u.ambiguous, u.known
		u.mu.Unlock()

		var a account
		if _, err := r.c.call(ctx, u.token, http.MethodGet, "/accounts/"+strconv.FormatInt(u.id, 10)+"/balance", nil, &a); err != nil {
			fail("user %d: read balance: %v", u.id, err)
			continue
		}
		balance, err := parseCents(a.Balance)
		if err != nil {
			fail("user %d: %v", u.id, err)
			continue
		}
		if balance < 0 {
			fail("user %d: negative balance %s", u.id, cents(balance))
		}
		if ambiguous > 0 {
			// Some creates may have taken effect unseen: the user's own list,
			// when it is complete, says which orders exist.
			var listed []apiOrder
			if _, err := r.c.call(ctx, u.token, http.MethodGet, listPath(u.id, listLimit), nil, &listed); err != nil {
				fail("user %d: list orders: %v", u.id, err)
				continue
			}
			if len(listed) >= listLimit {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf(
					"user %d: %d creates failed ambiguously and the user has %d+ orders: balance checked against the orders known to have been created",
					u.id, ambiguous, listLimit))
			} else {
				finished = 0
				for _, o := range listed {
					if known[o.ID] {
						continue
					}
					switch o.Status {
					case "NEW":
						unknownNew++
					case "FINISHED":
						amt, err := parseCents(o.Amount)
						if err != nil {
							fail("user %d: order %s: %v", u.id, o.ID, err)
						}
						finished += amt
					}
				}
			}
		}
		if want := baseline - finished; balance != want {
			fail("user %d: balance %s, want %s (after top-up) − %s (FINISHED orders) = %s",
				u.id, cents(balance), cents(baseline), cents(finished), cents(want))
		}
	}
	if unknownNew > 0 {
		fail("%d orders whose create failed ambiguously are still NEW", unknownNew)
	}
	if wrong > 0 {
		fail("%d orders settled against expectation (an affordable order CANCELLED or an unaffordable one FINISHED)", wrong)
	}
}

// Percentiles returns the nearest-rank percentiles of ds in milliseconds,
// rounded to 0.01 ms; zeros when ds is empty. ds is left as it was.
func Percentiles(ds []time.Duration, ps ...float64) []float64 {
	out := make([]float64, len(ps))
	if len(ds) == 0 {
		return out
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for i, p := range ps {
		rank := int(p/100*float64(len(s))+0.999999) - 1
		rank = max(0, min(rank, len(s)-1))
		out[i] = round(float64(s[rank]) / float64(time.Millisecond))
	}
	return out
}

func round(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// WriteTable writes rep for a person to read.
func (rep *Report) WriteTable(w io.Writer) {
	p := func(k, format string, args ...any) {
		fmt.Fprintf(w, "  %-24s "+format+"\n", append([]any{k}, args...)...)
	}
	fmt.Fprintln(w, "Load")
	p("users (ids from)", "%d (%d)", rep.Users, rep.UserBase+1)
	p("workers, rate", "%d, %s", rep.Workers, rateText(rep.Rate))
	p("sending took", "%.2fs", rep.DurationSec)
	fmt.Fprintln(w, "Orders")
	p("sent", "%d", rep.OrdersSent)
	p("created", "%d (%.0f/s)", rep.OrdersCreated, rep.CreatedPerSec)
	p("settled", "%d (%d FINISHED, %d CANCELLED)", rep.OrdersSettled, rep.OrdersFinished, rep.OrdersCancelled)
	p("unsettled", "%d", rep.OrdersUnsettled)
	p("settled per second", "%.1f", rep.SettledPerSec)
	fmt.Fprintln(w, "Latency (ms)               p50      p95      p99")
	fmt.Fprintf(w, "  %-24s %-8.2f %-8.2f %-8.2f\n", "create request", rep.CreateP50Ms, rep.CreateP95Ms, rep.CreateP99Ms)
	fmt.Fprintf(w, "  %-24s %-8.2f %-8.2f %-8.2f\n", "create → settled", rep.SettleP50Ms, rep.SettleP95Ms, rep.SettleP99Ms)
	fmt.Fprintln(w, "Errors")
	if len(rep.Errors) == 0 {
		p("none", "")
	}
	kinds := make([]string, 0, len(rep.Errors))
	for k := range rep.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p(k, "%d", rep.Errors[k])
	}
	if rep.InvariantsOK {
		fmt.Fprintln(w, "Invariants: OK (every order terminal, every balance = top-ups − FINISHED orders)")
	} else {
		fmt.Fprintln(w, "Invariants: FAILED")
	}
	for _, v := range rep.Violations {
		fmt.Fprintln(w, "  ✗", v)
	}
	for _, v := range rep.Warnings {
		fmt.Fprintln(w, "  !", v)
	}
}

func rateText(r float64) string {
	if r == 0 {
		return "flat out"
	}
	return fmt.Sprintf("%.0f orders/s", r)
}
