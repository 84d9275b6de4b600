package gateway

import (
	"encoding/json"
	"fmt"
	"log/syslog"
	"os"
	"sync"
	"time"

	"github.com/mailguard/mailguard/policy"
)

// Event is one line of the event log (docs/events.md documents schema v1).
// It is written after the store transition it reports has committed.
type Event struct {
	V         int               `json:"v"`
	TS        time.Time         `json:"ts"`
	Event     string            `json:"event"`
	MsgID     string            `json:"msg_id"`
	MessageID string            `json:"message_id,omitempty"`
	Direction string            `json:"direction,omitempty"`
	ClientIP  string            `json:"client_ip,omitempty"`
	HELO      string            `json:"helo,omitempty"`
	MailFrom  *string           `json:"mail_from,omitempty"`
	Rcpts     []string          `json:"rcpts,omitempty"`
	From      string            `json:"from,omitempty"`
	Subject   string            `json:"subject,omitempty"`
	Size      int64             `json:"size,omitempty"`
	Action    string            `json:"action,omitempty"`
	Reasons   []string          `json:"reasons,omitempty"`
	Score     *float64          `json:"score,omitempty"`
	Auth      map[string]string `json:"auth,omitempty"`
	SHA256    []string          `json:"sha256,omitempty"`
	Rcpt      string            `json:"rcpt,omitempty"`
	Code      int               `json:"code,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	Actor     string            `json:"actor,omitempty"`
	Note      string            `json:"note,omitempty"`
	TaskID    string            `json:"task_id,omitempty"`
	Malscore  *float64          `json:"malscore,omitempty"`
	HoldUntil *time.Time        `json:"hold_until,omitempty"`
	DSNID     string            `json:"dsn_id,omitempty"`
	Attempt   int               `json:"attempt,omitempty"`
	Relay     string            `json:"relay,omitempty"`
}

// EventSchemaVersion is the "v" of every event line.
const EventSchemaVersion = 1

// EventLog writes events as JSON lines to a file (reopened on SIGHUP for
// log rotation) and optionally to syslog. A nil *EventLog writes nothing.
type EventLog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	sys  *syslog.Writer
}

// OpenEventLog opens the event log the policy names (nothing when unset).
func OpenEventLog(cfg *policy.Log) (*EventLog, error) {
	l := &EventLog{path: cfg.Events}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	if cfg.Syslog {
		w, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, "mailguard")
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("event log: syslog: %w", err)
		}
		l.sys = w
	}
	return l, nil
}

// reopen opens the file again (after logrotate moved it).
func (l *EventLog) reopen() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	path := l.path
	l.mu.Unlock()
	return l.switchTo(path)
}

// switchTo writes to path from now on ("" stops writing to a file).
func (l *EventLog) switchTo(path string) error {
	var f *os.File
	if path != "" {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return fmt.Errorf("event log: %w", err)
		}
	}
	l.mu.Lock()
	old := l.f
	l.f, l.path = f, path
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Write appends one event; a nil EventLog writes nothing.
func (l *EventLog) Write(e Event) {
	if l == nil {
		return
	}
	l.mu.Lock()
	off := l.f == nil && l.sys == nil
	l.mu.Unlock()
	if off {
		return
	}
	e.V = EventSchemaVersion
	if e.TS.IsZero() {
		e.TS = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Write(append(b, '\n'))
	}
	if l.sys != nil {
		l.sys.Info(string(b))
	}
}

// Close closes the file and syslog connection.
func (l *EventLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.f != nil {
		err = l.f.Close()
		l.f = nil
	}
	if l.sys != nil {
		l.sys.Close()
	}
	return err
}
