// Package poll lets a test wait on a condition instead of sleeping and
// hoping: Until checks the condition every few milliseconds and fails the
// test only when it has not held for a minute, a bound that exists to stop
// a hung test, never to time a correct one.
package poll

import (
	"testing"
	"time"
)

// Bound is how long Until waits before it fails the test.
const Bound = time.Minute

// Until returns once cond holds, and fails t (naming what it waited for)
// when cond has not held within Bound.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", Bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
