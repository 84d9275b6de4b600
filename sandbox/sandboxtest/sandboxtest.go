// Package sandboxtest holds test helpers for sandbox: MemStore, an
// in-memory sandbox.Store, and TestStore, the conformance suite that every
// Store implementation (the SQLite and PostgreSQL ones in the store
// package) should pass.
package sandboxtest

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mailguard/mailguard/sandbox"
)

// MemStore is an in-memory sandbox.Store, safe for concurrent use. It
// counts its operations for tests and benchmarks.
type MemStore struct {
	mu       sync.Mutex
	verdicts map[string]memVerdict
	tasks    map[string]sandbox.Task
	ops      map[string]int
}

type memVerdict struct {
	v       sandbox.Verdict
	expires time.Time
}

var _ sandbox.Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{verdicts: map[string]memVerdict{}, tasks: map[string]sandbox.Task{}, ops: map[string]int{}}
}

// Ops returns how many times each method was called.
func (m *MemStore) Ops() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.ops)
}

// ResetOps zeroes the operation counters.
func (m *MemStore) ResetOps() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = map[string]int{}
}

// Tasks returns a copy of every task, sorted by key.
func (m *MemStore) Tasks() []sandbox.Task {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]sandbox.Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		out = append(out, copyTask(t))
	}
	slices.SortFunc(out, func(a, b sandbox.Task) int { return compareString(a.Key, b.Key) })
	return out
}

func compareString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func copyTask(t sandbox.Task) sandbox.Task {
	t.Options = maps.Clone(t.Options)
	return t
}

func copyVerdict(v sandbox.Verdict) sandbox.Verdict {
	v.Signatures = slices.Clone(v.Signatures)
	v.Detections = slices.Clone(v.Detections)
	return v
}

// GetVerdict implements sandbox.Store.
func (m *MemStore) GetVerdict(_ context.Context, key string, now time.Time) (sandbox.Verdict, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["GetVerdict"]++
	e, ok := m.verdicts[key]
	if !ok || !e.expires.After(now) {
		return sandbox.Verdict{}, false, nil
	}
	return copyVerdict(e.v), true, nil
}

// PutVerdict implements sandbox.Store.
func (m *MemStore) PutVerdict(_ context.Context, v sandbox.Verdict, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["PutVerdict"]++
	m.verdicts[v.Key] = memVerdict{v: copyVerdict(v), expires: expires}
	return nil
}

// GetTask implements sandbox.Store.
func (m *MemStore) GetTask(_ context.Context, key string) (sandbox.Task, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["GetTask"]++
	t, ok := m.tasks[key]
	return copyTask(t), ok, nil
}

// AddTask implements sandbox.Store.
func (m *MemStore) AddTask(_ context.Context, t sandbox.Task) (sandbox.Task, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["AddTask"]++
	if old, ok := m.tasks[t.Key]; ok {
		return copyTask(old), false, nil
	}
	m.tasks[t.Key] = copyTask(t)
	return copyTask(t), true, nil
}

// PutTask implements sandbox.Store.
func (m *MemStore) PutTask(_ context.Context, t sandbox.Task) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["PutTask"]++
	if _, ok := m.tasks[t.Key]; ok {
		m.tasks[t.Key] = copyTask(t)
	}
	return nil
}

// DeleteTask implements sandbox.Store.
func (m *MemStore) DeleteTask(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["DeleteTask"]++
	delete(m.tasks, key)
	return nil
}

// DueTasks implements sandbox.Store.
func (m *MemStore) DueTasks(_ context.Context, now, leaseUntil time.Time, max int) ([]sandbox.Task, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["DueTasks"]++
	var due []sandbox.Task
	for _, t := range m.tasks {
		if !t.NextPoll.After(now) {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b sandbox.Task) int {
		if c := a.NextPoll.Compare(b.NextPoll); c != 0 {
			return c
		}
		return compareString(a.Key, b.Key)
	})
	if len(due) > max {
		due = due[:max]
	}
	for i := range due {
		due[i].NextPoll = leaseUntil
		m.tasks[due[i].Key] = copyTask(due[i])
		due[i] = copyTask(due[i])
	}
	return due, nil
}

// CountTasks implements sandbox.Store.
func (m *MemStore) CountTasks(context.Context) (sandbox.TaskCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops["CountTasks"]++
	var c sandbox.TaskCounts
	for _, t := range m.tasks {
		if t.ID == "" {
			c.Queued++
		} else {
			c.Submitted++
		}
	}
	return c, nil
}
