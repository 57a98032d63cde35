package procid

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrWatcherClosed is returned by a Watcher used after Close.
var ErrWatcherClosed = errors.New("procid: watcher closed")

// Watcher reports the exits of the processes it watches.
type Watcher struct {
	mu     sync.Mutex
	byFD   map[int]watched
	byKey  map[any]int
	gone   []any // reported by the next Wait: processes already gone at Watch
	wake   int   // eventfd: a Watch or Close interrupts a Wait
	closed bool
}

type watched struct {
	key any
	id  ID
}

// NewWatcher makes an empty watcher.
func NewWatcher() (*Watcher, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("procid: eventfd: %w", err)
	}
	return &Watcher{byFD: map[int]watched{}, byKey: map[any]int{}, wake: fd}, nil
}

// Watch starts watching process id under key (a key already watched is
// replaced). A process that is already gone is reported by the next Wait.
func (w *Watcher) Watch(key any, id ID) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrWatcherClosed
	}
	w.unwatchLocked(key)
	fd, err := unix.PidfdOpen(id.Pid, unix.PIDFD_NONBLOCK)
	if err != nil || !Alive(id) {
		// ESRCH: gone; or the pid now names another process.
		if err == nil {
			unix.Close(fd)
		}
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("procid: pidfd_open %d: %w", id.Pid, err)
		}
		w.gone = append(w.gone, key)
	} else {
		w.byFD[fd] = watched{key: key, id: id}
		w.byKey[key] = fd
	}
	w.poke()
	return nil
}

// Unwatch stops watching key.
func (w *Watcher) Unwatch(key any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unwatchLocked(key)
}

func (w *Watcher) unwatchLocked(key any) {
	if fd, ok := w.byKey[key]; ok {
		unix.Close(fd)
		delete(w.byFD, fd)
		delete(w.byKey, key)
	}
}

// Watching reports whether key is watched.
func (w *Watcher) Watching(key any) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.byKey[key]
	return ok
}

func (w *Watcher) poke() {
	var one = [8]byte{1}
	unix.Write(w.wake, one[:])
}

// Wait blocks until a watched process exits, the watch set changes, or
// timeout passes. It returns the keys of the processes that exited and
// stops watching them.
func (w *Watcher) Wait(timeout time.Duration) ([]any, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, ErrWatcherClosed
	}
	if len(w.gone) > 0 {
		out := w.gone
		w.gone = nil
		w.mu.Unlock()
		return out, nil
	}
	fds := make([]unix.PollFd, 0, len(w.byFD)+1)
	fds = append(fds, unix.PollFd{Fd: int32(w.wake), Events: unix.POLLIN})
	snap := make(map[int]watched, len(w.byFD))
	for fd, wd := range w.byFD {
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		snap[fd] = wd
	}
	w.mu.Unlock()
	_, err := unix.Poll(fds, int(timeout/time.Millisecond))
	if err != nil && !errors.Is(err, unix.EINTR) {
		return nil, fmt.Errorf("procid: poll: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		// Closed while polling: the descriptors polled are closed (and
		// their numbers may belong to other files by now).
		return nil, ErrWatcherClosed
	}
	var buf [8]byte
	unix.Read(w.wake, buf[:])
	var out []any
	for _, p := range fds[1:] {
		if p.Revents == 0 {
			continue
		}
		// An Unwatch during the poll may have closed the descriptor and a
		// Watch reused its number for another process: report only what
		// is still the same watch and whose process is really gone.
		if wd, ok := w.byFD[int(p.Fd)]; ok && wd == snap[int(p.Fd)] && !Alive(wd.id) {
			out = append(out, wd.key)
			unix.Close(int(p.Fd))
			delete(w.byFD, int(p.Fd))
			delete(w.byKey, wd.key)
		}
	}
	out = append(out, w.gone...)
	w.gone = nil
	return out, nil
}

// Close releases every pidfd.
func (w *Watcher) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	for fd := range w.byFD {
		unix.Close(fd)
	}
	w.byFD, w.byKey = nil, nil
	w.poke()
	unix.Close(w.wake)
}
