package redistest

import "syscall"

// Pause freezes the server (SIGSTOP): connections stay open, nothing is
// answered, as with a Redis stalled by a slow disk or a VM pause. The test
// ends it with Resume; Stop also works on a paused server.
func (s *Server) Pause() {
	s.t.Helper()
	if pid := s.Pid(); pid == 0 || syscall.Kill(pid, syscall.SIGSTOP) != nil {
		s.t.Fatalf("pause redis-server (pid %d)", pid)
	}
	s.t.Cleanup(s.Resume) // never leave a frozen process behind
}

// Resume lets a paused server run again (SIGCONT). Resuming a running
// server does nothing.
func (s *Server) Resume() {
	if pid := s.Pid(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}
