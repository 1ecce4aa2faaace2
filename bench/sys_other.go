//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

// sleepUntil returns at t or a little later (time.Sleep's resolution).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// serverProcAttr puts redis-server in its own process group: a ctrl-C on
// the terminal reaches this process, which then kills the server itself.
func serverProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

var errNoProc = errors.New("CPU times need Linux's /proc")

// procCPU is unavailable outside Linux.
func procCPU(int) (time.Duration, error) { return 0, errNoProc }

// machineCPU is unavailable outside Linux.
func machineCPU() (busy, irq, total time.Duration, err error) { return 0, 0, 0, errNoProc }
