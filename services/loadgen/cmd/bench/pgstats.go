package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// What PostgreSQL did per settled order: commits from pg_stat_database
// (always there) and statements, each one round trip, from
// pg_stat_statements (when the server loads it).

// statsFlushWait is how long the bench waits before it reads
// pg_stat_database: a backend that goes idle reports its counts within 10
// seconds (PostgreSQL 15's PGSTAT_IDLE_INTERVAL). pg_stat_statements counts
// at once.
const statsFlushWait = 11 * time.Second

// pgssNotLoaded is what the report says without pg_stat_statements.
const pgssNotLoaded = "pg_stat_statements not loaded: to count statements, set shared_preload_libraries = 'pg_stat_statements' " +
	"(ALTER SYSTEM SET …, or postgresql.conf) and restart PostgreSQL; the bench creates the extension itself"

// stmtKey identifies a row of pg_stat_statements.
type stmtKey struct {
	DBID, UserID uint32
	QueryID      int64
}

type stmtCalls struct {
	DB, Query string
	Calls     int64
}

// pgSample is the counters of the bench's databases at one moment.
type pgSample struct {
	commits, rollbacks map[string]int64 // by database
	statements         map[stmtKey]stmtCalls
}

// enableStatements creates pg_stat_statements in db and reports whether
// the server has it loaded.
func enableStatements(ctx context.Context, db *bun.DB) (bool, error) {
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return false, fmt.Errorf("create extension pg_stat_statements: %w", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM pg_stat_statements LIMIT 1) AS s").Scan(&n); err != nil {
		if strings.Contains(err.Error(), "shared_preload_libraries") {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// samplePG reads the counters of dbs through db, the statements too when
// statements is set (db must have the extension).
func samplePG(ctx context.Context, db *bun.DB, dbs []string, statements bool) (pgSample, error) {
	s := pgSample{commits: map[string]int64{}, rollbacks: map[string]int64{}}
	var rows []struct {
		Datname                  string `bun:"datname"`
		XactCommit, XactRollback int64
	}
	if err := db.NewRaw("SELECT datname, xact_commit, xact_rollback FROM pg_stat_database WHERE datname IN (?)", bun.In(dbs)).Scan(ctx, &rows); err != nil {
		return s, fmt.Errorf("pg_stat_database: %w", err)
	}
	for _, r := range rows {
		s.commits[r.Datname], s.rollbacks[r.Datname] = r.XactCommit, r.XactRollback
	}
	if !statements {
		return s, nil
	}
	var stmts []struct {
		DBID    uint32 `bun:"dbid"`
		UserID  uint32 `bun:"userid"`
		QueryID int64  `bun:"queryid"`
		Datname string `bun:"datname"`
		Query   string `bun:"query"`
		Calls   int64  `bun:"calls"`
	}
	if err := db.NewRaw(`SELECT s.dbid, s.userid, coalesce(s.queryid, 0) AS queryid, d.datname, s.query, s.calls
		FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid WHERE d.datname IN (?)`, bun.In(dbs)).Scan(ctx, &stmts); err != nil {
		return s, fmt.Errorf("pg_stat_statements: %w", err)
	}
	s.statements = make(map[stmtKey]stmtCalls, len(stmts))
	for _, r := range stmts {
		s.statements[stmtKey{r.DBID, r.UserID, r.QueryID}] = stmtCalls{r.Datname, r.Query, r.Calls}
	}
	return s, nil
}

// pgPerOrder is what PostgreSQL did per settled order between two samples.
type pgPerOrder struct {
	Commits   float64            `json:"commits"`
	Rollbacks float64            `json:"rollbacks"`
	CommitsBy map[string]float64 `json:"commits_by_database"`
	// Statements is nil without pg_stat_statements.
	Statements   *float64           `json:"statements,omitempty"`
	StatementsBy map[string]float64 `json:"statements_by_database,omitempty"`
	Top          []topStatement     `json:"top_statements,omitempty"`
}

type topStatement struct {
	DB       string  `json:"database"`
	PerOrder float64 `json:"per_order"`
	Query    string  `json:"query"`
}

// pgWork divides the difference of two samples by settled, and lists the
// top statements by calls. A statement evicted from pg_stat_statements
// between the samples is lost; one that appeared counts whole.
func pgWork(before, after pgSample, settled int64, top int) pgPerOrder {
	n := float64(max(1, settled))
	p := pgPerOrder{CommitsBy: map[string]float64{}}
	for db, c := range after.commits {
		d := float64(c-before.commits[db]) / n
		p.CommitsBy[db] = d
		p.Commits += d
		p.Rollbacks += float64(after.rollbacks[db]-before.rollbacks[db]) / n
	}
	if after.statements == nil {
		return p
	}
	var total float64
	p.StatementsBy = map[string]float64{}
	for k, a := range after.statements {
		d := a.Calls - before.statements[k].Calls
		if d <= 0 {
			continue
		}
		per := float64(d) / n
		total += per
		p.StatementsBy[a.DB] += per
		p.Top = append(p.Top, topStatement{DB: a.DB, PerOrder: per, Query: oneLine(a.Query, 110)})
	}
	p.Statements = &total
	slices.SortFunc(p.Top, func(a, b topStatement) int {
		return cmp.Or(cmp.Compare(b.PerOrder, a.PerOrder), cmp.Compare(a.Query, b.Query))
	})
	p.Top = p.Top[:min(top, len(p.Top))]
	return p
}

// byDB formats per-database numbers as "short 1.23, …", highest first,
// with prefix cut from each database's name.
func byDB(m map[string]float64, prefix string) string {
	dbs := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(dbs))
	for i, db := range dbs {
		parts[i] = fmt.Sprintf("%s %.2f", strings.TrimPrefix(db, prefix), m[db])
	}
	return strings.Join(parts, ", ")
}

// oneLine squeezes a statement's whitespace and cuts it to n runes.
func oneLine(q string, n int) string {
	q = strings.Join(strings.Fields(q), " ")
	if r := []rune(q); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return q
}
