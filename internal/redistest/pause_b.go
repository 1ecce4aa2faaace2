package redistest

import (
	"syscall"
	"testing"
)

// PauseB freezes the server with SIGSTOP (a hung Redis: connections stay
// open, nothing answers) and returns the function that resumes it with
// SIGCONT. The server is resumed when the test ends if the caller did not.
// (Engineer B's helper for issue 9; merge with any twin.)
func (s *Server) PauseB(t testing.TB) (resume func()) {
	t.Helper()
	pid := s.Pid()
	if pid == 0 {
		t.Fatal("redistest: pause: server not running")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("redistest: SIGSTOP %d: %v", pid, err)
	}
	resumed := false
	resume = func() {
		if resumed {
			return
		}
		resumed = true
		if p := s.Pid(); p == pid {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	return resume
}
