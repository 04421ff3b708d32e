package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// cpuTotals are the CPU seconds used so far by each process a request goes through: this load
// generator (and the in-process service, when measured), the service (its /metrics), and the
// database and Redis servers when they run on this machine (read from /proc; -1 when not found).
// Their differences over an endpoint's run, per request, show where its time goes.
type cpuTotals struct{ client, service, db, redis float64 }

// CPU is an endpoint's CPU time per request, in microseconds, by process; -1 where unknown.
type CPU struct{ Client, Service, DB, Redis float64 }

func sampleCPU(ctx context.Context, client *http.Client, url string) cpuTotals {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	secs := func(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	return cpuTotals{
		client:  secs(ru.Utime) + secs(ru.Stime),
		service: scrapeMetric(ctx, client, url, "process_cpu_seconds_total"),
		db:      procCPU("mariadbd", "mysqld"),
		redis:   procCPU("redis-server"),
	}
}

// perRequest turns the CPU used between a and b into microseconds per request.
func perRequest(a, b cpuTotals, requests int) CPU {
	per := func(x, y float64) float64 {
		if x < 0 || y < 0 || requests == 0 {
			return -1
		}
		return (y - x) / float64(requests) * 1e6
	}
	return CPU{Client: per(a.client, b.client), Service: per(a.service, b.service), DB: per(a.db, b.db), Redis: per(a.redis, b.redis)}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux architecture
// Go supports.
const clockTicks = 100

// procCPU sums the user and system CPU seconds of the local processes with one of these names,
// or returns -1 when there is none (another machine, or not Linux).
func procCPU(names ...string) float64 {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	total, found := 0.0, false
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so fields are counted after ')'.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(b[open+1 : end])
		match := false
		for _, n := range names {
			match = match || comm == n
		}
		if !match {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 13 { // utime and stime are fields 14 and 15 of the line, 12 and 13 after comm
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total, found = total+(ut+st)/clockTicks, true
	}
	if !found {
		return -1
	}
	return total
}

// scrapeMetric reads one unlabelled sample from the service's /metrics, or -1.
func scrapeMetric(ctx context.Context, client *http.Client, url, name string) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}
