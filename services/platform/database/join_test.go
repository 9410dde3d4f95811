package database_test

import (
	"context"
	"slices"
	"testing"
	"testing/fstest"

	"shop/services/platform/database"
)

// Join makes one sequence of two directories: every migration of both is
// applied, in name order whichever directory holds it.
func TestJoinAppliesBothDirectoriesInOrder(t *testing.T) {
	platform := fstest.MapFS{
		"20260101000000_first.tx.up.sql": {Data: []byte("CREATE TABLE a (id INTEGER PRIMARY KEY)")},
		"20260103000000_third.tx.up.sql": {Data: []byte("CREATE TABLE c (a_id INTEGER REFERENCES b (id))")},
	}
	service := fstest.MapFS{
		"20260102000000_second.tx.up.sql": {Data: []byte("CREATE TABLE b (id INTEGER PRIMARY KEY REFERENCES a (id))")},
	}
	db, err := database.Open(context.Background(), "sqlite::memory:", database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	applied, err := database.Migrate(context.Background(), db, database.Join(platform, service))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"20260101000000_first", "20260102000000_second", "20260103000000_third"}
	if !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	if n, err := database.Pending(context.Background(), db, database.Join(platform, service)); err != nil || n != 0 {
		t.Fatalf("Pending = %d, %v; want 0", n, err)
	}
}
