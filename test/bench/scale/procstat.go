package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vipcast/vipcast/test/lab"
)

// userHZ is the kernel's clock tick for /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const userHZ = 100

// cpuOf is the CPU time (user + system) a process has used, from /proc/<pid>/stat.
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(u+st) * time.Second / userHZ, nil
}

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

// proc is one process whose CPU is followed, by name ("node-1", "controller").
type proc struct {
	name string
	p    *lab.Process
}

// speakers are the speakers of the running nodes, in node order.
func (e *env) speakers() []proc {
	var out []proc
	for _, n := range e.lab.Nodes {
		if p := n.Process("speaker"); p != nil && p.Running() {
			out = append(out, proc{n.Name, p})
		}
	}
	return out
}

func (e *env) controller() proc { return proc{"controller", e.lab.Process("cp/controller")} }

// usage is the CPU time of each process at one moment.
type usage struct {
	at  time.Time
	cpu map[string]time.Duration
	pid map[string]int
}

func readUsage(procs []proc) usage {
	u := usage{at: time.Now(), cpu: map[string]time.Duration{}, pid: map[string]int{}}
	for _, p := range procs {
		pid := p.p.Pid()
		if c, err := cpuOf(pid); err == nil {
			u.cpu[p.name], u.pid[p.name] = c, pid
		}
	}
	return u
}

// since is the CPU each process used from an earlier reading to this one; a process that
// was restarted in between (another pid) is left out and named in restarted.
func (u usage) since(before usage) (used map[string]time.Duration, restarted []string) {
	used = map[string]time.Duration{}
	for name, c := range u.cpu {
		if pid, ok := before.pid[name]; !ok || pid != u.pid[name] {
			restarted = append(restarted, name)
			continue
		}
		used[name] = c - before.cpu[name]
	}
	return used, restarted
}

// sampler reads the processes' CPU every period, so that the CPU used up to a moment known
// only afterwards (the last address's first claim) can be read back.
type sampler struct {
	procs []proc
	stop  context.CancelFunc
	done  chan struct{}

	mu      sync.Mutex
	samples []usage
}

// samplePeriod is the sampler's period: the resolution of CPU read back at a moment.
const samplePeriod = 250 * time.Millisecond

func startSampler(ctx context.Context, procs []proc) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{procs: procs, stop: cancel, done: make(chan struct{}), samples: []usage{readUsage(procs)}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(samplePeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			u := readUsage(s.procs)
			s.mu.Lock()
			s.samples = append(s.samples, u)
			s.mu.Unlock()
		}
	}()
	return s
}

// end stops the sampler.
func (s *sampler) end() {
	s.stop()
	<-s.done
}

// first is the sampler's first reading.
func (s *sampler) first() usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples[0]
}

// at is the first reading taken at or after t (the last one when none was).
func (s *sampler) at(t time.Time) usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.samples {
		if !u.at.Before(t) {
			return u
		}
	}
	return s.samples[len(s.samples)-1]
}

// total adds up the CPU of every process.
func total(used map[string]time.Duration) time.Duration {
	var total time.Duration
	for _, c := range used {
		total += c
	}
	return total
}

// quiet waits until the speakers use less than quietShare of a core each on average over a
// quietWindow, for at most quietLimit, and says how long it waited and whether they did.
func (e *env) quiet(ctx context.Context) (time.Duration, bool, error) {
	start := time.Now()
	procs := e.speakers()
	for time.Since(start) < quietLimit {
		before := readUsage(procs)
		if err := sleep(ctx, quietWindow); err != nil {
			return 0, false, err
		}
		used, _ := readUsage(procs).since(before)
		if float64(total(used)) < quietShare*float64(len(procs))*float64(quietWindow) {
			return time.Since(start), true, nil
		}
	}
	return time.Since(start), false, nil
}

const (
	quietWindow = 5 * time.Second
	quietShare  = 0.05
	quietLimit  = 3 * time.Minute
)

// sleep waits d or until the run is interrupted.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seconds prints CPU time as seconds with two decimals.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// mb prints bytes as MB with one decimal.
func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
