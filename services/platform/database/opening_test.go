package database_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
)

// insertReturning inserts numbers and returns those it inserted.
var insertReturning = database.NewStatement("INSERT", "numbers",
	"INSERT INTO numbers (n) SELECT * FROM unnest($1::bigint[]) ON CONFLICT DO NOTHING RETURNING n")

// opening is an Opening of insertReturning for numbers, which reads the
// numbers inserted into *got.
func opening(numbers []int64, got *[]int64) database.Opening {
	return database.Opening{Statement: insertReturning, Args: []any{numbers}, Rows: func(rows pgx.Rows) error {
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				return err
			}
			*got = append(*got, n)
		}
		return rows.Err()
	}}
}

func numbersTable(t *testing.T) *bun.DB {
	t.Helper()
	db := dbtest.Open(t, dbtest.Postgres, nil)
	if _, err := db.ExecContext(context.Background(), "CREATE TABLE numbers (n BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	// One connection: each test below also shows that the connection
	// comes back to the pool clean.
	db.SetMaxOpenConns(1)
	return db
}

func numbersIn(t *testing.T, db *bun.DB) []int64 {
	t.Helper()
	var got []int64
	if err := db.NewSelect().Table("numbers").Column("n").Order("n").Scan(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	return got
}

// BEGIN goes with the opening statement, in one round trip; the rest of
// the transaction runs on its connection and commits with it.
func TestRunInTxOpeningCommits(t *testing.T) {
	ctx := context.Background()
	db := numbersTable(t)
	if _, err := insertNumbers.Exec(ctx, db, []int64{2}); err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second finds the statement prepared
		stmts := dbtest.Count(t, db)
		var inserted []int64
		base := int64(10 * (round + 1))
		err := database.RunInTxOpening(ctx, db, opening([]int64{2, base, base + 1}, &inserted), func(ctx context.Context, tx bun.IDB) error {
			_, err := insertNumbers.Exec(ctx, tx, []int64{base + 2})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(inserted, []int64{base, base + 1}) {
			t.Errorf("round %d: the opening returned %v, want [%d %d]", round, inserted, base, base+1)
		}
		if got, want := stmts.All(), []string{"BEGIN+INSERT", "INSERT", "COMMIT"}; !slices.Equal(got, want) {
			t.Errorf("round %d: round trips %v, want %v", round, got, want)
		}
		if got, want := stmts.Ops(), []string{"INSERT", "INSERT"}; !slices.Equal(got, want) {
			t.Errorf("round %d: statements %v, want %v", round, got, want)
		}
	}
	if got, want := numbersIn(t, db), []int64{2, 10, 11, 12, 20, 21, 22}; !slices.Equal(got, want) {
		t.Errorf("numbers %v, want %v", got, want)
	}
}

// Whatever goes wrong, nothing of the transaction stays: fn failing, fn
// hiding a statement's failure (PostgreSQL answers the COMMIT with
// ROLLBACK), fn panicking, or the opening statement failing.
func TestRunInTxOpeningRollsBack(t *testing.T) {
	ctx := context.Background()
	db := numbersTable(t)
	boom := errors.New("boom")
	tests := []struct {
		name string
		open database.Opening
		fn   func(ctx context.Context, tx bun.IDB) error
		want error
	}{
		{"fn fails", opening([]int64{1}, new([]int64)), func(ctx context.Context, tx bun.IDB) error {
			_, _ = insertNumbers.Exec(ctx, tx, []int64{2})
			return boom
		}, boom},
		{"fn hides a failed statement", opening([]int64{1}, new([]int64)), func(ctx context.Context, tx bun.IDB) error {
			_, _ = tx.ExecContext(ctx, "SELECT 1/0")
			return nil
		}, database.ErrRolledBack},
		{"opening fails", database.Opening{Statement: insertNumbers, Args: []any{[]int64{1, 1}}}, func(ctx context.Context, tx bun.IDB) error {
			t.Error("fn ran after its opening failed")
			return nil
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := database.RunInTxOpening(ctx, db, tt.open, tt.fn)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if got := numbersIn(t, db); len(got) != 0 {
				t.Errorf("numbers %v after the failure, want none", got)
			}
		})
	}
	t.Run("fn panics", func(t *testing.T) {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not go through")
				}
			}()
			_ = database.RunInTxOpening(ctx, db, opening([]int64{1}, new([]int64)), func(context.Context, bun.IDB) error {
				panic("boom")
			})
		}()
		if got := numbersIn(t, db); len(got) != 0 {
			t.Errorf("numbers %v after the panic, want none", got)
		}
	})
}

// A statement run with ExecLast goes with the COMMIT, in one round trip;
// outside a transaction of RunInTxOpening it runs at once.
func TestExecLastGoesWithCommit(t *testing.T) {
	ctx := context.Background()
	db := numbersTable(t)
	stmts := dbtest.Count(t, db)
	err := database.RunInTxOpening(ctx, db, opening([]int64{1}, new([]int64)), func(ctx context.Context, tx bun.IDB) error {
		if _, err := insertNumbers.Exec(ctx, tx, []int64{2}); err != nil {
			return err
		}
		if err := insertNumbers.ExecLast(ctx, tx, []int64{3, 4}); err != nil {
			return err
		}
		if _, err := insertNumbers.Exec(ctx, tx, []int64{5}); err == nil {
			t.Error("a statement after the last one ran")
		}
		if err := insertNumbers.ExecLast(ctx, tx, []int64{6}); err == nil {
			t.Error("a second last statement was taken")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stmts.All(), []string{"BEGIN+INSERT", "INSERT", "INSERT+COMMIT"}; !slices.Equal(got, want) {
		t.Errorf("round trips %v, want %v", got, want)
	}
	if err := insertNumbers.ExecLast(ctx, db, []int64{7}); err != nil {
		t.Fatal(err)
	}
	if got, want := numbersIn(t, db), []int64{1, 2, 3, 4, 7}; !slices.Equal(got, want) {
		t.Errorf("numbers %v, want %v", got, want)
	}
}

// A last statement that fails fails the transaction: nothing of it stays,
// and its connection goes back to the pool out of the transaction.
func TestExecLastFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	db := numbersTable(t)
	if _, err := insertNumbers.Exec(ctx, db, []int64{9}); err != nil {
		t.Fatal(err)
	}
	err := database.RunInTxOpening(ctx, db, opening([]int64{1}, new([]int64)), func(ctx context.Context, tx bun.IDB) error {
		return insertNumbers.ExecLast(ctx, tx, []int64{2, 9})
	})
	if err == nil || strings.Count(err.Error(), "duplicate key") != 1 {
		t.Fatalf("error %v, want the last statement's duplicate key, once", err)
	}
	if got, want := numbersIn(t, db), []int64{9}; !slices.Equal(got, want) {
		t.Errorf("numbers %v after the failure, want %v", got, want)
	}
}
