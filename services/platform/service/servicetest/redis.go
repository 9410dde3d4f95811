package servicetest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/platform/database/dbtest"
)

// RedisURL returns the URL of a Redis database (1 to 15) of the server at
// TEST_REDIS_URL that no other test holds, emptied for this test and again
// after it. Tests in other packages run at the same time, and the shop's
// stream names are fixed, so each test needs a database of its own. Without
// TEST_REDIS_URL the test is skipped, unless CI=true, where it fails.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_REDIS_URL")
	if base == "" {
		dbtest.Unavailable(t, "TEST_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	ctx := context.Background()
	lockOpts := *opts
	lockOpts.DB = 0
	locks := redis.NewClient(&lockOpts)
	if err := locks.Ping(ctx).Err(); err != nil {
		locks.Close()
		dbtest.Unavailable(t, fmt.Sprintf("Redis at TEST_REDIS_URL: %v", err))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db <= 15; db++ {
			key := "shop:test-lock:" + strconv.Itoa(db)
			ok, err := locks.SetNX(ctx, key, os.Getpid(), 15*time.Minute).Result()
			if err != nil {
				t.Fatalf("lock a Redis database: %v", err)
			}
			if !ok {
				continue
			}
			dbOpts := *opts
			dbOpts.DB = db
			client := redis.NewClient(&dbOpts)
			if err := client.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("flush Redis database %d: %v", db, err)
			}
			t.Cleanup(func() {
				client.FlushDB(context.Background())
				client.Close()
				locks.Del(context.Background(), key)
				locks.Close()
			})
			u, _ := url.Parse(base) // parsed by redis.ParseURL above
			u.Path = "/" + strconv.Itoa(db)
			return u.String()
		}
		if time.Now().After(deadline) {
			t.Fatal("no free Redis test database within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
