package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program the lab runs inside one of its network namespaces, with its output in
// a log file of the lab's directory. It can be stopped gracefully, killed and started again
// with the same arguments.
type Process struct {
	// Name is unique in the lab: "cp/kube-apiserver", "node-2/kube-proxy", "pod/default/web-0".
	Name  string
	Netns string
	Argv  []string
	Env   []string
	// Log is the file that collects the program's stdout and stderr (appended to on restart).
	Log string
	// Restart starts the program again a second after it exits by itself, as Kubernetes
	// restarts a Deployment's or DaemonSet's pod; Stop and Kill do not trigger it.
	Restart bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	stopping bool
}

// Start runs the program (again). It is an error to start a running process.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !closed(p.done) {
		return fmt.Errorf("%s is already running", p.Name)
	}
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.Argv, " "))
	// ip netns exec enters the namespace and execs the program: the pid is the program's.
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Netns}, p.Argv...)...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	p.cmd, p.done, p.err, p.stopping = cmd, make(chan struct{}), nil, false
	go func(cmd *exec.Cmd, done chan struct{}) {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		restart := p.Restart && !p.stopping
		p.mu.Unlock()
		close(done)
		if restart {
			time.Sleep(time.Second)
			p.mu.Lock()
			again := !p.stopping && p.cmd == cmd
			p.mu.Unlock()
			if again {
				_ = p.Start()
			}
		}
	}(cmd, p.done)
	return nil
}

// Running tells whether the program has been started and has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !closed(p.done)
}

// Exited returns a channel closed when the running program exits (nil when none runs).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.done
}

// Signal sends sig to the program's process group. SIGTERM and SIGKILL count as stopping it
// (no Restart).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || closed(p.done) {
		return fmt.Errorf("%s is not running", p.Name)
	}
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		p.stopping = true
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// ErrKilled says a program did not exit within its grace period and was killed.
var ErrKilled = errors.New("killed after the grace period")

// Stop sends SIGTERM and waits up to grace for the exit, then kills (ErrKilled). It returns
// an error for a program that exited with a non-zero code (nil when it was not running).
func (p *Process) Stop(grace time.Duration) error {
	done := p.Exited()
	if done == nil || closed(done) {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = p.Signal(syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: %w", p.Name, grace, ErrKilled)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var exit *exec.ExitError
	if errors.As(p.err, &exit) && exit.ExitCode() != 0 {
		return fmt.Errorf("%s exited with code %d", p.Name, exit.ExitCode())
	}
	return nil
}

// Kill sends SIGKILL, as a power cut would, and waits for the exit.
func (p *Process) Kill() {
	done := p.Exited()
	if done == nil || closed(done) {
		return
	}
	_ = p.Signal(syscall.SIGKILL)
	<-done
}

// Pid is the running program's process ID (0 when it is not running).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Tail is the end of the program's log, for a failure message.
func (p *Process) Tail(lines int) string { return tailFile(p.Log, lines) }

func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// run runs a command to completion and returns its trimmed output, or an error that
// carries the output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// ip runs `ip -n netns args...` (netns "" is the host).
func ip(ctx context.Context, netns string, args ...string) error {
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	_, err := run(ctx, "ip", args...)
	return err
}

// Exec runs a command inside a network namespace and returns its output.
func Exec(ctx context.Context, netns string, argv ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", netns}, argv...)...)
}

// sysctl sets kernel settings inside a namespace.
func sysctl(ctx context.Context, netns string, kv ...string) error {
	_, err := Exec(ctx, netns, append([]string{"sysctl", "-q", "-w"}, kv...)...)
	return err
}

// Pids lists the processes running inside a network namespace.
func Pids(ctx context.Context, netns string) ([]int, error) {
	out, err := run(ctx, "ip", "netns", "pids", netns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetnsProcesses SIGKILLs every process inside a namespace, as a power cut does.
// This process is never one of them: a goroutine of it may be inside the namespace for a
// moment (InNetns), and if that is the main thread, "ip netns pids" lists this process (a
// test binary killed itself so while its next lab started).
func killNetnsProcesses(ctx context.Context, netns string) {
	pids, _ := Pids(ctx, netns)
	for _, pid := range pids {
		if pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// chownToUser gives a directory and what is in it to a system user (a daemon that drops
// its privileges must write there).
func chownToUser(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %s (is its package installed?): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
}
