package mllp

import (
	"sync"
	"time"

	"github.com/iomt/iomt/wire/hl7v2"
)

// A monitor's clock may be off. MSH-7 is when the monitor says it composed the message, so the
// lag from MSH-7 to the gateway's receipt is the monitor's clock offset plus the time the
// message waited (network, the monitor's own queue while it was disconnected). The smallest lag
// over recent messages is the best estimate of the offset: a message that waited only adds to
// it. A negative estimate is unambiguous — nothing arrives before it was sent — so a monitor
// whose clock runs ahead has its observation times moved back by it. A positive one is not
// corrected: a slow clock and a monitor replaying what it queued during an outage look the
// same, and moving replayed readings forward would misdate them.

// skewWindow is how many recent messages of a sender the estimate considers.
const skewWindow = 32

type skewEstimate struct {
	lags []time.Duration // ring of the last skewWindow lags
	next int
}

func (e *skewEstimate) add(lag time.Duration) time.Duration {
	if len(e.lags) < skewWindow {
		e.lags = append(e.lags, lag)
	} else {
		e.lags[e.next] = lag
		e.next = (e.next + 1) % skewWindow
	}
	m := e.lags[0]
	for _, l := range e.lags[1:] {
		if l < m {
			m = l
		}
	}
	return m
}

// skews keeps one estimate per sender (MSH-3 and MSH-4).
type skews struct {
	mu  sync.Mutex
	est map[string]*skewEstimate
}

// correction records a message of sender sent at (by its clock) and received now, and returns
// how much to add to the sender's times: zero unless the sender's clock is estimated to run
// ahead by more than tolerance.
func (s *skews) correction(sender string, sent, received time.Time, tolerance time.Duration) time.Duration {
	if sent.IsZero() || tolerance < 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.est == nil {
		s.est = map[string]*skewEstimate{}
	}
	e := s.est[sender]
	if e == nil {
		e = &skewEstimate{}
		s.est[sender] = e
	}
	off := e.add(received.Sub(sent))
	if off >= -tolerance {
		return 0
	}
	return off.Truncate(time.Millisecond)
}

// shiftTimes moves every observation time of the report by d.
func shiftTimes(rep *hl7v2.Report, d time.Duration) {
	for i := range rep.Orders {
		for j := range rep.Orders[i].Observations {
			if t := rep.Orders[i].Observations[j].Time; t != nil {
				shifted := *t
				shifted.Time = t.Time.Add(d)
				rep.Orders[i].Observations[j].Time = &shifted
			}
		}
	}
}
