//go:build !linux

package main

import (
	"syscall"
	"time"
)

// sleepUntil returns at t or a little later (time.Sleep's resolution).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// serverProcAttr puts redis-server in its own process group: a ctrl-C on
// the terminal reaches this process, which then kills the server itself.
func serverProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
