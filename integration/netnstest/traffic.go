package netnstest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Reply is what the servers below answer: a dialer that reads it knows the
// connection really reached the server (and not, say, a RST from a router).
const Reply = "dockward-ok"

// ServeTCP listens on addr ("0.0.0.0:80", "[::]:80") inside the namespace and
// answers every connection with Reply. It stops when the test ends.
func (n *NS) ServeTCP(t testing.TB, addr string) {
	t.Helper()
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen tcp %s in %s: %v", addr, n.Name, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = fmt.Fprintln(c, Reply)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
}

// ServeUDP echoes Reply to every datagram received on addr.
func (n *NS) ServeUDP(t testing.TB, addr string) {
	t.Helper()
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, n.Name, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(Reply+"\n"), from)
		}
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		wg.Wait()
	})
}

// DialTCP connects from inside the namespace to addr and reads the server's
// Reply, all within timeout. nil means the connection got through.
func (n *NS) DialTCP(addr string, timeout time.Duration) error {
	return n.Do(func() error {
		deadline := time.Now().Add(timeout)
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		return readReply(c)
	})
}

// DialUDP sends a datagram from inside the namespace to addr and waits for
// the echo within timeout.
func (n *NS) DialUDP(addr string, timeout time.Duration) error {
	return n.Do(func() error {
		c, err := net.DialTimeout("udp", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		return readReply(c)
	})
}

func readReply(c net.Conn) error {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != Reply {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Timeouts for the checks below: a connection that is let through on these
// veth links answers in well under a millisecond, so Pass waits generously;
// Blocked waits long enough for a few SYN retransmissions to have been
// dropped too.
const (
	passTimeout    = 5 * time.Second
	blockedTimeout = 1500 * time.Millisecond
)

// ExpectTCP checks that a TCP connection from n to addr gets through (want
// true) or does not (want false, which must be a timeout: a refused or
// reset connection means the packet got through to something).
func (n *NS) ExpectTCP(t testing.TB, addr string, want bool) {
	t.Helper()
	expect(t, n, "tcp", addr, want, n.DialTCP)
}

// ExpectUDP is ExpectTCP for a UDP echo.
func (n *NS) ExpectUDP(t testing.TB, addr string, want bool) {
	t.Helper()
	expect(t, n, "udp", addr, want, n.DialUDP)
}

func expect(t testing.TB, n *NS, proto, addr string, want bool, dial func(string, time.Duration) error) {
	t.Helper()
	if want {
		if err := dial(addr, passTimeout); err != nil {
			t.Errorf("%s %s from %s: want it to get through, got %v", proto, addr, n.Name, err)
		}
		return
	}
	err := dial(addr, blockedTimeout)
	var ne net.Error
	switch {
	case err == nil:
		t.Errorf("%s %s from %s: want it dropped, but it got through", proto, addr, n.Name)
	case errors.As(err, &ne) && ne.Timeout():
		// Dropped, as wanted.
	default:
		t.Errorf("%s %s from %s: want it silently dropped (timeout), got %v", proto, addr, n.Name, err)
	}
}
