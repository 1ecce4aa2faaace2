package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The reference rows measure the shape "50 goroutines, one XADD per call"
// without eventbus: how fast can any client go when each caller waits for
// its own reply? They take the same pre-encoded 305-byte envelope as raw
// go-redis (no validation, no encoding, no id), so they bound what
// eventbus's Publish can reach on this machine.

// publishAutoPipeline: goroutines each send one XADD per call through
// go-redis's own automatic pipelining (Client.AutoPipeline, blocking face).
func (s *raw) publishAutoPipeline(ctx context.Context, c *cell, goroutines, n int) (float64, error) {
	rc := c.client()
	defer rc.Close()
	ap, err := rc.AutoPipeline()
	if err != nil {
		return 0, err
	}
	defer ap.Close()
	stream := c.key("autopipeline")
	op := func(ctx context.Context, _ int) error { return ap.XAdd(ctx, s.xadd(stream, s.env.raw)).Err() }
	return publishRate(ctx, rc, stream, goroutines, n, op)
}

// publishMinimal: goroutines each send one XADD per call through
// minimalPipe, a hand-written pipelining client with none of a general
// client's work (one connection, RESP written and read in place).
func (s *raw) publishMinimal(ctx context.Context, c *cell, goroutines, n int) (float64, error) {
	opts, err := redis.ParseURL(c.url)
	if err != nil {
		return 0, err
	}
	if opts.TLSConfig != nil {
		return 0, errors.New("the minimal client speaks plain TCP only")
	}
	p, err := dialMinimalPipe(ctx, opts)
	if err != nil {
		return 0, err
	}
	defer p.close()
	// The calls ignore ctx: a cancelled cell (timeout) fails the connection
	// instead, which fails every call.
	defer context.AfterFunc(ctx, func() { _ = p.conn.SetDeadline(time.Unix(1, 0)) })()
	stream := c.key("minimal")
	op := func(context.Context, int) error { return p.xadd(stream, s.env.raw) }
	rc := c.client()
	defer rc.Close()
	return publishRate(ctx, rc, stream, goroutines, n, op)
}

// minimalPipe pipelines XADDs from concurrent callers on one connection:
// callers append their command to a shared buffer and wait; a writer
// goroutine writes everything queued as one batch once the previous batch
// has been answered (one batch in flight, so batches grow with the load);
// a reader goroutine parses the replies in order and wakes each caller.
type minimalPipe struct {
	conn net.Conn

	mu      sync.Mutex
	buf     []byte
	waiters []*minimalCall
	err     error // the connection failed: every later call fails

	kick     chan struct{}       // capacity 1: something is queued
	slot     chan struct{}       // capacity 1: a batch is in flight
	inflight chan []*minimalCall // batches written, in order
	done     sync.WaitGroup
}

type minimalCall struct {
	err  error
	done chan struct{}
}

func dialMinimalPipe(ctx context.Context, opts *redis.Options) (*minimalPipe, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	// The throwaway server needs no handshake; a given URL may carry a
	// password or a database.
	var hello []byte
	replies := 0
	if opts.Password != "" {
		if opts.Username != "" {
			hello = appendCommand(hello, "AUTH", opts.Username, opts.Password)
		} else {
			hello = appendCommand(hello, "AUTH", opts.Password)
		}
		replies++
	}
	if opts.DB != 0 {
		hello = appendCommand(hello, "SELECT", strconv.Itoa(opts.DB))
		replies++
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	if replies > 0 {
		if _, err := conn.Write(hello); err != nil {
			conn.Close()
			return nil, err
		}
		for range replies {
			if _, err := readReply(r); err != nil {
				conn.Close()
				return nil, fmt.Errorf("handshake: %w", err)
			}
		}
	}
	p := &minimalPipe{conn: conn, kick: make(chan struct{}, 1), slot: make(chan struct{}, 1), inflight: make(chan []*minimalCall, 1)}
	p.done.Add(2)
	go p.writer()
	go p.reader(r)
	return p, nil
}

// xadd sends XADD stream * event payload and waits for its reply.
func (p *minimalPipe) xadd(stream string, payload []byte) error {
	call := &minimalCall{done: make(chan struct{})}
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return p.err
	}
	p.buf = append(p.buf, "*5\r\n$4\r\nXADD\r\n"...)
	p.buf = appendBulk(p.buf, stream)
	p.buf = append(p.buf, "$1\r\n*\r\n$5\r\nevent\r\n"...)
	p.buf = appendBulk(p.buf, payload)
	p.waiters = append(p.waiters, call)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	<-call.done
	return call.err
}

func (p *minimalPipe) writer() {
	defer p.done.Done()
	defer close(p.inflight)
	var spare []byte
	for range p.kick {
		p.slot <- struct{}{} // wait until the previous batch is answered
		p.mu.Lock()
		buf, calls := p.buf, p.waiters
		p.buf, p.waiters = spare[:0], nil
		p.mu.Unlock()
		spare = buf
		if len(calls) == 0 {
			<-p.slot
			continue
		}
		p.inflight <- calls
		if _, err := p.conn.Write(buf); err != nil {
			p.fail(err)
			return
		}
	}
}

func (p *minimalPipe) reader(r *bufio.Reader) {
	defer p.done.Done()
	for calls := range p.inflight {
		for i, call := range calls {
			_, err := readReply(r)
			var rerr replyError
			if errors.As(err, &rerr) {
				call.err = err // Redis refused this command; the stream goes on
				close(call.done)
				continue
			}
			if err != nil {
				for _, c := range calls[i:] {
					c.err = err
					close(c.done)
				}
				<-p.slot
				p.fail(err)
				for rest := range p.inflight { // until the writer stops
					for _, c := range rest {
						c.err = err
						close(c.done)
					}
					<-p.slot
				}
				return
			}
			close(call.done)
		}
		<-p.slot
	}
}

// fail marks the pipe broken and fails the calls still queued.
func (p *minimalPipe) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	calls := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, c := range calls {
		c.err = err
		close(c.done)
	}
	p.conn.Close()
}

func (p *minimalPipe) close() {
	p.fail(net.ErrClosed)
	close(p.kick)
	p.done.Wait()
}

func appendBulk[T string | []byte](b []byte, s T) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}

// replyError is an error reply from Redis (the connection is fine).
type replyError string

func (e replyError) Error() string { return string(e) }

// readReply reads one reply: a simple string, an error or a bulk string
// (what AUTH, SELECT and XADD answer).
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 {
		return "", fmt.Errorf("short reply %q", line)
	}
	body := string(line[1 : len(line)-2])
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return "", replyError(body)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk length %q", body)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
