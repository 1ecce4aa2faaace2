package main

import (
	"runtime"
	"syscall"
	"time"
)

// precise makes sleepUntil accurate to a few microseconds on the calling
// goroutine: time.Sleep wakes up to a millisecond late on Linux (the
// runtime's poller waits in whole milliseconds), which would add up to
// 1 ms of harness error to every latency figure. It locks the goroutine
// to its thread and sets the thread's timer slack to 1 ns; call the
// returned function to undo.
func precise() (undo func()) {
	runtime.LockOSThread()
	const prSetTimerSlack = 29
	var old uintptr
	if v, _, errno := syscall.Syscall(syscall.SYS_PRCTL, 30 /* PR_GET_TIMERSLACK */, 0, 0); errno == 0 {
		old = v
	}
	_, _, _ = syscall.Syscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	return func() {
		if old > 0 {
			_, _, _ = syscall.Syscall(syscall.SYS_PRCTL, prSetTimerSlack, old, 0)
		}
		runtime.UnlockOSThread()
	}
}

// spinWindow is how long before the due time sleepUntil stops sleeping and
// spins (nanosleep itself overshoots by tens of microseconds).
const spinWindow = 100 * time.Microsecond

// sleepUntil returns at t: nanosleep until shortly before, then spin.
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
