// Package seed loads realistic, valid users in bulk for benchmarks: valid Verhoeff Aadhaar
// numbers, person PANs, libphonenumber-valid mobiles, unique emails, a spread of names, cities and
// birth dates, through the same schema, unique keys and vault as the service. Seeded users get
// no audit rows (they were not created by anyone).
package seed

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// Options sizes a run.
type Options struct {
	Count   int
	Workers int
	Batch   int       // users per transaction
	Out     io.Writer // progress bar and summary
	// ReadBackSeqs reads every batch's seqs back from the database even where the server's
	// innodb_autoinc_lock_mode makes them known: the MySQL 8.0 path, for tests on MariaDB.
	ReadBackSeqs bool
}

// Result reports a run.
type Result struct {
	Count   int
	Elapsed time.Duration
}

var (
	firstNames = []string{"Aarav", "Vivaan", "Aditya", "Vihaan", "Arjun", "Sai", "Reyansh", "Ayaan", "Krishna", "Ishaan",
		"Ananya", "Diya", "Aadhya", "Saanvi", "Pari", "Anika", "Navya", "Myra", "Sara", "Ira", "Rajesh", "Priya",
		"Sunita", "Amit", "Neha", "Rahul", "Pooja", "Vikram", "Kavya", "Rohan", "Meera", "Harpreet", "Lakshmi",
		"Mohammed", "Fatima", "Joseph", "Mary", "Suresh", "Deepa", "Arun", "Gayatri", "Karthik", "Nandini"}
	lastNames = []string{"Sharma", "Verma", "Gupta", "Kumar", "Singh", "Patel", "Shah", "Reddy", "Nair", "Iyer",
		"Menon", "Das", "Banerjee", "Chatterjee", "Mukherjee", "Joshi", "Kulkarni", "Desai", "Rao", "Pillai",
		"Khan", "Ahmed", "Fernandes", "D'Souza", "Gill", "Sandhu", "Bhat", "Hegde", "Mishra", "Tiwari", "Yadav"}
	cities = []string{"Mumbai, Maharashtra", "Delhi", "Bengaluru, Karnataka", "Hyderabad, Telangana", "Chennai, Tamil Nadu",
		"Kolkata, West Bengal", "Pune, Maharashtra", "Ahmedabad, Gujarat", "Jaipur, Rajasthan", "Lucknow, Uttar Pradesh",
		"Kochi, Kerala", "Bhopal, Madhya Pradesh", "Patna, Bihar", "Chandigarh", "Guwahati, Assam", "Bhubaneswar, Odisha"}
	streets = []string{"MG Road", "Park Street", "Station Road", "Gandhi Nagar", "Nehru Place", "Anna Salai", "Brigade Road",
		"Linking Road", "Civil Lines", "Ring Road"}
	domains = []string{"example.com", "example.in", "example.org", "mail.example.net"}
)

// person derives one user's values from candidate index k. Every identifier is an injective
// function of k within its range, so a run never collides with itself; tag keeps emails apart
// across runs. ok is false when a derived value is not valid (then k is skipped).
func person(k uint64, tag string, now time.Time) (nu users.NewUser, ok bool) {
	return Person(k, tag, now)
}

// Person derives a valid user from candidate index k (see person); exported for the benchmark.
func Person(k uint64, tag string, now time.Time) (nu users.NewUser, ok bool) {
	// Consecutive candidates share the first six digits (10,000 numbers each), so that the
	// prefix cache parses about one number in 10,000 (a spread-out mapping parsed one in ten: a
	// fifth of the seed's CPU); the mapping stays injective below 10^9.
	mobile := fmt.Sprintf("9%05d%04d", (k/10_000)%100_000, k%10_000)
	m, ok := validMobile(mobile)
	if !ok {
		return nu, false
	}
	payload := fmt.Sprintf("9%010d", (k*104729+7)%10_000_000_000)
	a, err := govid.ParseAadhaar(payload + string(govid.VerhoeffCheckDigit(payload)))
	if err != nil {
		return nu, false
	}
	n := k
	letters := make([]byte, 5)
	for i := range letters {
		letters[i] = byte('A' + n%26)
		n /= 26
	}
	digits := k%9999 + 1
	p, err := govid.ParsePAN(fmt.Sprintf("%c%c%cP%c%04d%c", letters[0], letters[1], letters[2], letters[3], digits, letters[4]))
	if err != nil {
		return nu, false
	}
	first, last := firstNames[k%uint64(len(firstNames))], lastNames[(k/7)%uint64(len(lastNames))]
	email, err := users.ParseEmail(fmt.Sprintf("%s.%s.%s%d@%s", strings.ToLower(first), strings.ToLower(strings.ReplaceAll(last, "'", "")), tag, k, domains[k%4]))
	if err != nil {
		return nu, false
	}
	city := cities[(k/3)%uint64(len(cities))]
	addr := fmt.Sprintf("%d %s, %s - %06d", k%999+1, streets[k%uint64(len(streets))], city, 110001+k%800000)
	// Ages 18-80, spread over the days of the year.
	dob := now.AddDate(-18-int(k%62), 0, -int(k%365)).UTC().Truncate(24 * time.Hour)
	return users.NewUser{Name: first + " " + last, Email: email, PrimaryMobile: m, DateOfBirth: dob, PlaceOfBirth: city,
		Aadhaar: a, PAN: p, CurrentAddress: addr, PermanentAddress: addr}, true
}

// seedSpan is how far back seeded users were created: a million users over 30 days is about
// 23 registrations a minute (fewer minute rows in user_time_counts keep the load fast).
const seedSpan = 30 * 24 * time.Hour

// mobilePrefixes caches, per first six digits, whether libphonenumber accepts a seeded mobile:
// India's mobile ranges are decided by at most the first six digits (the rest are free), and a
// full parse costs more than everything else a seeded user needs. TestMobilePrefixCache checks
// the cache against the full parse.
var mobilePrefixes sync.Map

// validMobile is users.ParseMobile for the seed's 10-digit numbers, cached by prefix.
func validMobile(mobile string) (string, bool) {
	if ok, seen := mobilePrefixes.Load(mobile[:6]); seen {
		return mobile, ok.(bool)
	}
	m, err := users.ParseMobile(mobile)
	ok := err == nil && m == mobile
	mobilePrefixes.Store(mobile[:6], ok)
	return mobile, ok
}

// Run loads opts.Count users.
func Run(ctx context.Context, db *sql.DB, v *vault.Vault, opts Options) (Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Batch <= 0 {
		// One batch is one transaction and one search segment per gram: large batches keep the
		// segment count low, and so the rows a search reads per gram.
		opts.Batch = 16384
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	base := binary.LittleEndian.Uint64(b[:]) % 1_000_000_000 // where this run's candidates start
	tag := fmt.Sprintf("s%x", b[:2])
	var (
		next     atomic.Uint64 // next candidate index
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	next.Store(base)
	// With innodb_autoinc_lock_mode 2 (MySQL 8.0's default) the seqs of a batch may interleave
	// with other inserts, and are read back; with 0 or 1 (MariaDB's default) they are known.
	consecutive, err := users.ConsecutiveSeqs(ctx, db)
	if err != nil {
		return Result{}, err
	}
	consecutive = consecutive && !opts.ReadBackSeqs
	var batchNo atomic.Int64
	batches := max(1, (int64(opts.Count)+int64(opts.Batch)-1)/int64(opts.Batch))
	start, now := time.Now(), time.Now().UTC()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	remaining := atomic.Int64{}
	remaining.Store(int64(opts.Count))
	stopBar := progress(opts.Out, opts.Count, &done, start)
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := min(int64(opts.Batch), remaining.Add(-int64(opts.Batch))+int64(opts.Batch))
				if n <= 0 {
					return
				}
				batch := make([]users.NewUser, 0, n)
				for int64(len(batch)) < n {
					if p, ok := person(next.Add(1), tag, now); ok {
						batch = append(batch, p)
					}
				}
				// Batch b of the run registers its users within the b-th slice of the last two
				// years: creation times spread evenly over the days, as registrations do, and a
				// batch touches a few days of user_time_counts instead of all of them.
				b := batchNo.Add(1) - 1
				from := now.Add(-seedSpan + time.Duration(b)*seedSpan/time.Duration(batches))
				if err := insertBatch(ctx, db, v, batch, from, seedSpan/time.Duration(batches), consecutive); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(n)
			}
		}()
	}
	wg.Wait()
	stopBar()
	res := Result{Count: int(done.Load()), Elapsed: time.Since(start)}
	if firstErr != nil {
		return res, firstErr
	}
	if opts.Out != nil {
		fmt.Fprintf(opts.Out, "seeded %d users in %s (%.0f users/s)\n", res.Count, res.Elapsed.Round(time.Millisecond), float64(res.Count)/res.Elapsed.Seconds())
	}
	return res, nil
}

func insertBatch(ctx context.Context, db *sql.DB, v *vault.Vault, batch []users.NewUser, from time.Time, window time.Duration, consecutive bool) error {
	bulk := make([]users.BulkUser, len(batch))
	for i, nu := range batch {
		// Creation times at random within the batch's window (microsecond resolution, so ties are
		// as rare as in real traffic), so that lists have a real order.
		created := from.Add(time.Duration(mrand.Int64N(max(int64(window/time.Microsecond), 1))) * time.Microsecond)
		bulk[i] = users.BulkUser{ID: users.NewID(), User: nu, CreatedAt: created}
	}
	return users.CreateBulk(ctx, db, v, bulk, users.BulkOptions{Actor: "system:seed", Consecutive: consecutive})
}

// progress draws a bar on out until stopped.
func progress(out io.Writer, total int, done *atomic.Int64, start time.Time) func() {
	if out == nil {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	draw := func() {
		d := done.Load()
		frac := float64(d) / float64(max(total, 1))
		bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
		rate := float64(d) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(out, "\r[%s] %3.0f%% %d/%d users, %.0f/s ", bar, frac*100, d, total, rate)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				draw()
				fmt.Fprintln(out)
				return
			case <-t.C:
				draw()
			}
		}
	}()
	return func() { close(stop); <-finished }
}
