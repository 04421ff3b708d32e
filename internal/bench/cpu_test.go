package bench

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procCPU reads this test's own process from /proc: after some busy work it must agree with the
// kernel's getrusage within a few clock ticks, and a name no process has gives -1.
func TestProcCPUAgreesWithGetrusage(t *testing.T) {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		_ = strings.Repeat("x", 1024)
	}
	got := procCPU(strings.TrimSpace(string(comm)))
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	want := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	// Other test binaries of the same name could run at the same time; ours alone is the floor.
	if got < want-0.05 || got < 0.25 {
		t.Fatalf("procCPU = %.3f s, getrusage says %.3f s", got, want)
	}
	if v := procCPU("no-such-process-name"); v != -1 {
		t.Fatalf("procCPU of a missing process = %v, want -1", v)
	}
}
