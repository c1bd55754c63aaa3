package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// pollInterval returns the wait before the next check of something that
// usually is ready at once (dockerd, Type=notify, is active and serving when
// its start job ends): start fast, back off to a quarter second.
func pollInterval(attempt int) time.Duration {
	d := 20 * time.Millisecond << min(attempt, 4)
	return min(d, 250*time.Millisecond)
}

// waitActive polls the unit until it is active with no job queued, or the
// deadline passes. It returns the last state read.
func (m *Module) waitActive(ctx context.Context, deadline time.Time) (unitState, error) {
	var last unitState
	var lastErr error
	for attempt := 0; ; attempt++ {
		u, err := m.sd.State(ctx, m.b.Unit)
		if err == nil {
			last = u
			switch {
			case u.ActiveState == "active" && u.JobID == 0:
				return u, nil
			case u.ActiveState == "failed" || (u.ActiveState == "inactive" && u.JobID == 0):
				// Nothing more will happen without another job.
				return u, fmt.Errorf("%s is %s", m.b.Unit, u)
			}
		}
		lastErr = err
		if err := sleepUntil(ctx, deadline, pollInterval(attempt)); err != nil {
			if lastErr != nil {
				return last, fmt.Errorf("%s did not become active within %s: %w", m.b.Unit, m.b.Timeout, lastErr)
			}
			return last, fmt.Errorf("%s did not become active within %s: it is %s: %w", m.b.Unit, m.b.Timeout, last, err)
		}
	}
}

// waitIdle waits until no job is queued on the unit, or the deadline.
func (m *Module) waitIdle(ctx context.Context, log interface{ Infof(string, ...any) }, deadline time.Time) error {
	t := time.Now()
	defer func() { m.waited += time.Since(t) }()
	for attempt := 0; ; attempt++ {
		u, err := m.sd.State(ctx, m.b.Unit)
		if err != nil {
			return err
		}
		if u.JobID == 0 {
			return nil
		}
		if attempt == 0 {
			log.Infof("%s has job %d queued (another run's or an operator's); waiting for it to finish", m.b.Unit, u.JobID)
		}
		if err := sleepUntil(ctx, deadline, pollInterval(attempt)); err != nil {
			return fmt.Errorf("job %d queued on %s did not finish within %s: %w", u.JobID, m.b.Unit, m.b.Timeout, err)
		}
	}
}

// sleepUntil waits d, or returns ErrTimeout when deadline comes first, or
// ctx's error.
func sleepUntil(ctx context.Context, deadline time.Time, d time.Duration) error {
	left := time.Until(deadline)
	if left <= 0 {
		return ErrTimeout
	}
	timer := time.NewTimer(min(d, left))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		if !time.Now().Before(deadline) {
			return ErrTimeout
		}
		return nil
	}
}

// pingDocker asks the Engine API on socket for GET /_ping until it answers
// 200 "OK" or deadline passes. A started dockerd can take a moment to serve
// when the unit's readiness comes from elsewhere (Type=simple units,
// socket activation), hence the retries.
func pingDocker(ctx context.Context, socket string, deadline time.Time) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var last error
	for attempt := 0; ; attempt++ {
		last = pingOnce(ctx, client, deadline)
		if last == nil {
			return nil
		}
		if err := sleepUntil(ctx, deadline, pollInterval(attempt)); err != nil {
			if errors.Is(err, ErrTimeout) {
				return fmt.Errorf("the Docker Engine API on %s did not answer /_ping in time: %w", socket, last)
			}
			return fmt.Errorf("the Docker Engine API on %s: %w", socket, err)
		}
	}
}

func pingOnce(ctx context.Context, client *http.Client, deadline time.Time) error {
	// One answer should not take long; a hung daemon must not eat the
	// whole budget in a single request.
	d := time.Now().Add(5 * time.Second)
	if deadline.Before(d) {
		d = deadline
	}
	rctx, cancel := context.WithDeadline(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_ping: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
