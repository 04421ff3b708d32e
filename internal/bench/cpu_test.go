package bench

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// procCPU reads this test's own process from /proc: after some busy work it must agree with the
// kernel's getrusage within a few clock ticks, and a name no process has gives -1.
func TestProcCPUAgreesWithGetrusage(t *testing.T) {
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until getrusage has counted 0.3 s of it (not 0.3 s of wall time: on a loaded
	// machine that may be much less CPU).
	var ru syscall.Rusage
	cpu := func() float64 {
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	}
	for cpu() < 0.3 {
		for i := 0; i < 1000; i++ {
			_ = strings.Repeat("x", 1024)
		}
	}
	got := procCPU(strings.TrimSpace(string(comm)))
	want := cpu()
	// Other test binaries of the same name could run at the same time; ours alone is the floor.
	// /proc counts in clock ticks (10 ms), hence the margin.
	if got < want-0.05 {
		t.Fatalf("procCPU = %.3f s, getrusage says %.3f s", got, want)
	}
	if v := procCPU("no-such-process-name"); v != -1 {
		t.Fatalf("procCPU of a missing process = %v, want -1", v)
	}
}
