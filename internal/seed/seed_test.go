package seed

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/usersvc/usersvc/internal/users"
)

// TestMobilePrefixCache checks the seed's prefix cache against libphonenumber on random numbers
// of the seed's shape: the cache must never accept a number the service would refuse, nor the
// reverse.
func TestMobilePrefixCache(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		// 500 prefixes, 40 numbers each: the cache answers all but the first of each.
		prefix := (uint64(i%500)*2003 + 17) % 100_000
		mobile := fmt.Sprintf("9%05d%04d", prefix, r.Uint64N(10_000))
		_, cached := validMobile(mobile)
		m, err := users.ParseMobile(mobile)
		if full := err == nil && m == mobile; cached != full {
			t.Fatalf("%s: cache says %v, libphonenumber says %v", mobile, cached, full)
		}
	}
}
