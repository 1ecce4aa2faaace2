package redistest

import "syscall"

// Pause freezes the server with SIGSTOP: connections stay open and nothing
// is answered, as with a Redis stalled by a slow disk or a VM pause. The
// test ends it with Resume; Stop also works on a paused server, and the
// server is resumed when the test ends if the test did not do it.
func (s *Server) Pause() {
	s.t.Helper()
	pid := s.Pid()
	if pid == 0 {
		s.t.Fatal("redistest: pause: server not running")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: SIGSTOP redis-server (pid %d): %v", pid, err)
	}
	s.t.Cleanup(s.Resume) // never leave a frozen process behind
}

// Resume lets a paused server run again (SIGCONT). Resuming a running or
// stopped server does nothing.
func (s *Server) Resume() {
	if pid := s.Pid(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}
