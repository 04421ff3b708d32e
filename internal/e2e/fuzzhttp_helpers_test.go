package e2e

// The HTTP fuzzer's bookkeeping: failures, the ids and cursors it has seen, the log scan for
// personal values, and its environment knobs.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

func (f *fuzzer) fail(msg string) {
	if f.failures.Add(1) <= 20 {
		f.mu.Lock()
		f.messages = append(f.messages, msg)
		f.mu.Unlock()
	}
}

func (f *fuzzer) failed() []string { f.mu.Lock(); defer f.mu.Unlock(); return f.messages }

func (f *fuzzer) statusCounts() map[int]int { f.mu.Lock(); defer f.mu.Unlock(); return f.statuses }

func (f *fuzzer) pickID(rng *rand.Rand) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ids) == 0 || rng.IntN(4) == 0 {
		return []string{"not-an-id", "00000000-0000-0000-0000-000000000000", "01900000-0000-7000-8000-000000000000", "%2e%2e"}[rng.IntN(4)]
	}
	return f.ids[rng.IntN(len(f.ids))]
}

func (f *fuzzer) pickCursor(rng *rand.Rand) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cursors) == 0 {
		return ""
	}
	return f.cursors[rng.IntN(len(f.cursors))]
}

func (f *fuzzer) etagOf(path string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, seg := range strings.Split(path, "/") {
		if et, ok := f.etags[seg]; ok {
			return et
		}
	}
	return "x"
}

// findAny returns a value of set that occurs in s as a word of its own (not inside a longer run
// of letters and digits, such as a request id's hex), or "". It slides a window of each length
// the values have over s once, so that a large log and many values cost linear time.
func findAny(s string, set map[string]bool) string {
	lengths := map[int]bool{}
	for v := range set {
		lengths[len(v)] = true
	}
	alnum := func(i int) bool {
		if i < 0 || i >= len(s) {
			return false
		}
		c := s[i]
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for n := range lengths {
		for i := 0; i+n <= len(s); i++ {
			if set[s[i:i+n]] && !alnum(i-1) && !alnum(i+n) {
				return s[i : i+n]
			}
		}
	}
	return ""
}

func randToken(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'*+^`|"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// rssKB reads a process's resident set size from /proc.
func rssKB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestFindAny: the fuzzer's log scan finds a value as a word, and not inside a hex id.
func TestFindAny(t *testing.T) {
	set := map[string]bool{"9876543210": true, "fleet.abc@example.com": true}
	for s, want := range map[string]string{
		`{"msg":"x","email":"fleet.abc@example.com"}`: "fleet.abc@example.com",
		`mobile 9876543210 leaked`:                    "9876543210",
		`"request_id":"a19876543210b"`:                "",
		`"request_id":"19876543210"`:                  "",
		`nothing here`:                                "",
	} {
		if got := findAny(s, set); got != want {
			t.Errorf("findAny(%q) = %q, want %q", s, got, want)
		}
	}
}
