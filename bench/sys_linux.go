package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spinWindow is how long before the due time sleepUntil stops sleeping and
// spins: nanosleep overshoots by the thread's timer slack (50 µs by
// default) plus scheduling.
const spinWindow = 100 * time.Microsecond

// sleepUntil returns at t: nanosleep until shortly before, then spin.
// time.Sleep would wake up to a millisecond late (the runtime's poller
// waits in whole milliseconds). The goroutine is deliberately not locked to
// its thread: a locked goroutine that blocks on the network (every publish
// does) pays two thread hand-offs per wake-up, which put a floor of about
// one send interval under every system's p99 (measured: ~560 µs for all
// three locked, 220-370 µs unlocked).
func sleepUntil(t time.Time) {
	if d := time.Until(t) - spinWindow; d > 0 {
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil)
	}
	for time.Now().Before(t) {
	}
}

// serverProcAttr puts redis-server in its own process group (a ctrl-C on
// the terminal reaches this process, which then kills the server itself)
// and has the kernel kill it should this process die without cleaning up.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// clockTick is the unit of the CPU times in /proc (USER_HZ, 100 on every
// Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system) process pid has used so far,
// from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after its closing parenthesis start at field 3 (state);
	// utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * clockTick, nil
}

// machineCPU returns the busy, interrupt and total CPU time of all cores
// so far, from /proc/stat's cpu line. Busy is everything but idle and
// iowait; irq is the hard and soft interrupt time within it (loopback
// networking is mostly softirq, charged to no process).
func machineCPU() (busy, irq, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var all, idle, irqs int64
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		all += v
		switch i {
		case 3, 4: // idle, iowait
			idle += v
		case 5, 6: // irq, softirq
			irqs += v
		}
	}
	return time.Duration(all-idle) * clockTick, time.Duration(irqs) * clockTick, time.Duration(all) * clockTick, nil
}
