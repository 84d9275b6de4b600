package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailguard/mailguard/store"
)

// spoolPath is where the bytes of message id live once durable. mailguard
// IDs begin with their time (smtp.NewID), so the directory named by the
// first six characters holds the messages of about seventeen minutes:
// messages accepted together share a directory, and one directory fsync in
// the group commit covers them all. Other IDs fall back to a hash.
func (s *DB) spoolPath(id string) string {
	return filepath.Join(s.dir, "spool", "msg", spoolBucket(id), id)
}

func spoolBucket(id string) string {
	if len(id) >= 12 {
		return id[:6]
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("h%02x", h.Sum32()&0xff)
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') || id[0] == '.' {
			return false
		}
	}
	return true
}

// Accept implements store.Store. A message up to the inline size is
// committed with its row (one group-committed WAL fsync). A larger one:
// write to tmp, fsync, rename, then fsync the directory and commit the row
// (both in the group commit). Only then does it return.
func (s *DB) Accept(ctx context.Context, m *store.Message, r io.Reader) (int64, error) {
	return s.accept(ctx, m, nil, r, nil)
}

// AcceptDecided implements store.Store: Accept and Decide (from Received)
// in one transaction, so a message inspected before it was stored costs
// one group commit.
func (s *DB) AcceptDecided(ctx context.Context, m *store.Message, data []byte, d store.Decided) error {
	if data == nil {
		data = []byte{}
	}
	_, err := s.accept(ctx, m, data, nil, &d)
	return err
}

// accept stores data (or, when data is nil, what r yields) as message m
// in state Received or, with a decision d, as decided: the row in d.State
// with its file index and deliveries, in the same transaction.
func (s *DB) accept(ctx context.Context, m *store.Message, data []byte, r io.Reader, d *store.Decided) (int64, error) {
	if !validID(m.ID) {
		return 0, fmt.Errorf("store: invalid message id %q", m.ID)
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = s.now()
	}
	m.State = store.Received
	if d != nil {
		m.State, m.MessageID, m.From, m.Subject, m.Action = d.State, d.MessageID, d.From, d.Subject, d.Action
		m.Reasons, m.Score, m.Decision, m.Prepend, m.HoldUntil = d.Reasons, d.Score, d.Decision, d.Prepend, d.HoldUntil
		m.Files = d.Files
	}
	head, small := data, data != nil && len(data) <= s.inline
	if data == nil {
		var err error
		if head, small, err = s.readInline(r); err != nil {
			return int64(len(head)), err
		}
	} else if !small {
		r = bytes.NewReader(data)
		head = nil
	}
	if small {
		m.Size = int64(len(head))
		err := s.write(ctx, nil, func(tx *sql.Tx) error {
			if err := insertMessageDecided(tx, m, d, s.now()); err != nil {
				return err
			}
			return insertInline(tx, m.ID, head)
		})
		return m.Size, err
	}
	tmp := filepath.Join(s.dir, "spool", "tmp", m.ID)
	final := s.spoolPath(m.ID)
	if _, err := os.Lstat(final); err == nil {
		// The rename would replace another message's bytes.
		return 0, fmt.Errorf("store: message %s exists", m.ID)
	}
	n, err := s.spool(tmp, final, io.MultiReader(bytes.NewReader(head), r))
	if err != nil {
		return n, err
	}
	m.Size = n
	err = s.write(ctx, []string{filepath.Dir(final)}, func(tx *sql.Tx) error {
		return insertMessageDecided(tx, m, d, s.now())
	})
	if err != nil {
		// Not durable as a row: the file would be an orphan. Remove it so
		// that a retry by the client does not leave evidence behind twice.
		s.fs.Remove(final)
		return n, err
	}
	return n, nil
}

// readInline reads r up to the inline size. small reports that r ended
// within it (head is then the whole message).
func (s *DB) readInline(r io.Reader) (head []byte, small bool, err error) {
	if s.inline <= 0 {
		return nil, false, nil
	}
	head, err = io.ReadAll(io.LimitReader(r, int64(s.inline)+1))
	if err != nil {
		// The reader's error (bare LF, too large, timeout) is the caller's
		// to map to a reply: keep it unwrapped for errors.Is/As.
		return head, false, err
	}
	return head, len(head) <= s.inline, nil
}

func insertInline(tx *sql.Tx, id string, b []byte) error {
	if _, err := tx.Exec(`INSERT INTO spool_inline (id, data) VALUES (?, ?)`, id, b); err != nil {
		return fmt.Errorf("store: spool %s: %w", id, err)
	}
	return nil
}

func (s *DB) spool(tmp, final string, r io.Reader) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return 0, fmt.Errorf("store: spool dir: %w", err)
	}
	f, err := s.fs.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("store: spool create: %w", err)
	}
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		s.fs.Remove(tmp)
		return n, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		s.fs.Remove(tmp)
		return n, fmt.Errorf("store: spool fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		s.fs.Remove(tmp)
		return n, fmt.Errorf("store: spool close: %w", err)
	}
	if err := s.fs.Rename(tmp, final); err != nil {
		s.fs.Remove(tmp)
		return n, fmt.Errorf("store: spool rename: %w", err)
	}
	return n, nil
}

// AddSpooled stores bytes produced by mailguard itself (a DSN) durably and
// returns the directory to fsync in the transaction that records the row.
func (s *DB) addSpooled(id string, b []byte) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("store: invalid message id %q", id)
	}
	final := s.spoolPath(id)
	if _, err := s.spool(filepath.Join(s.dir, "spool", "tmp", id), final, strings.NewReader(string(b))); err != nil {
		return "", err
	}
	return filepath.Dir(final), nil
}

// insertMessageDecided inserts m and, with a decision, what Decide adds:
// the delivery's header changes, the file index and the deliveries.
func insertMessageDecided(tx *sql.Tx, m *store.Message, d *store.Decided, now time.Time) error {
	if err := insertMessage(tx, m, now); err != nil || d == nil {
		return err
	}
	if d.SubjectPrefix != "" || d.StripAuthResults {
		if _, err := tx.Exec(`UPDATE messages SET subject_prefix = ?, strip_ar = ? WHERE id = ?`,
			d.SubjectPrefix, d.StripAuthResults, m.ID); err != nil {
			return fmt.Errorf("store: decide %s: %w", m.ID, err)
		}
	}
	if err := insertFiles(tx, m.ID, d.Files); err != nil {
		return err
	}
	return insertLeasedDeliveries(tx, m.ID, d.Deliveries, now, d.LeaseOwner, d.LeaseUntil)
}

func insertMessage(tx *sql.Tx, m *store.Message, now time.Time) error {
	_, err := tx.Exec(`INSERT INTO messages (id, received_at, state, state_at, direction,
		client_ip, helo, proto, smtputf8, eightbit, mail_from, rcpts, size, message_id, hdr_from,
		subject, action, reasons, score, decision, prepend, hold_until)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		m.ID, us(m.ReceivedAt), string(m.State), us(now), m.Direction, m.ClientIP, m.HELO, m.Proto,
		m.SMTPUTF8, m.EightBit,
		m.MailFrom, jsonList(m.Rcpts), m.Size, m.MessageID, m.From, m.Subject, m.Action,
		jsonList(m.Reasons), m.Score, []byte(m.Decision), m.Prepend, us(m.HoldUntil))
	if err != nil {
		return fmt.Errorf("store: insert %s: %w", m.ID, err)
	}
	return nil
}

// Open implements store.Store.
func (s *DB) Open(ctx context.Context, id string) (io.ReadSeekCloser, error) {
	if !validID(id) {
		return nil, store.ErrNotFound
	}
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM spool_inline WHERE id = ?`, id).Scan(&data)
	if err == nil {
		return inlineReader{bytes.NewReader(data)}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: spool %s: %w", id, err)
	}
	f, err := os.Open(s.spoolPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: spool %s: %w", id, store.ErrNotFound)
	}
	return f, err
}

const msgCols = `id, received_at, state, state_at, direction, client_ip, helo, proto, smtputf8, eightbit, mail_from,
	rcpts, size, message_id, hdr_from, subject, action, reasons, score, decision, prepend,
	hold_until`

func scanMessage(row interface{ Scan(...any) error }) (*store.Message, error) {
	var m store.Message
	var recv, stAt, hold int64
	var st, rcpts, reasons string
	var decision, prepend []byte
	err := row.Scan(&m.ID, &recv, &st, &stAt, &m.Direction, &m.ClientIP, &m.HELO, &m.Proto, &m.SMTPUTF8, &m.EightBit, &m.MailFrom,
		&rcpts, &m.Size, &m.MessageID, &m.From, &m.Subject, &m.Action, &reasons, &m.Score,
		&decision, &prepend, &hold)
	if err != nil {
		return nil, err
	}
	m.ReceivedAt, m.StateAt, m.HoldUntil = fromUS(recv), fromUS(stAt), fromUS(hold)
	m.State = store.State(st)
	m.Rcpts, m.Reasons = parseList(rcpts), parseList(reasons)
	if len(decision) > 0 {
		m.Decision = json.RawMessage(decision)
	}
	m.Prepend = prepend
	return &m, nil
}

// Get implements store.Store.
func (s *DB) Get(ctx context.Context, id string) (*store.Message, error) {
	m, err := scanMessage(s.r.QueryRowContext(ctx, `SELECT `+msgCols+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	if m.Files, err = s.files(ctx, id); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *DB) files(ctx context.Context, id string) ([]store.FileRef, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT sha256, path, name, type, size FROM files WHERE msg_id = ? ORDER BY rowid`, id)
	if err != nil {
		return nil, fmt.Errorf("store: files %s: %w", id, err)
	}
	defer rows.Close()
	var out []store.FileRef
	for rows.Next() {
		var f store.FileRef
		if err := rows.Scan(&f.SHA256, &f.Path, &f.Name, &f.Type, &f.Size); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// setState moves id from one of from to to; ErrState if it was elsewhere.
func setState(tx *sql.Tx, id string, from []store.State, to store.State, now time.Time) error {
	q := `UPDATE messages SET state = ?, state_at = ? WHERE id = ?`
	args := []any{string(to), us(now), id}
	if len(from) > 0 {
		q += ` AND state IN (` + placeholders(len(from)) + `)`
		for _, f := range from {
			args = append(args, string(f))
		}
	}
	res, err := tx.Exec(q, args...)
	if err != nil {
		return fmt.Errorf("store: state %s → %s: %w", id, to, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var cur string
		if err := tx.QueryRow(`SELECT state FROM messages WHERE id = ?`, id).Scan(&cur); errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return fmt.Errorf("%w: %s is %s, not %v", store.ErrState, id, cur, from)
	}
	return nil
}

// Decide implements store.Store.
func (s *DB) Decide(ctx context.Context, id string, from []store.State, d store.Decided) error {
	return s.write(ctx, nil, func(tx *sql.Tx) error { return decide(tx, id, from, d, s.now()) })
}

// decide is Decide inside the caller's transaction.
func decide(tx *sql.Tx, id string, from []store.State, d store.Decided, now time.Time) error {
	if err := setState(tx, id, from, d.State, now); err != nil {
		return err
	}
	_, err := tx.Exec(`UPDATE messages SET message_id = ?, hdr_from = ?, subject = ?,
		action = ?, reasons = ?, score = ?, decision = ?, prepend = ?, hold_until = ?,
		subject_prefix = ?, strip_ar = ? WHERE id = ?`, d.MessageID, d.From, d.Subject, d.Action,
		jsonList(d.Reasons), d.Score, []byte(d.Decision), d.Prepend, us(d.HoldUntil),
		d.SubjectPrefix, d.StripAuthResults, id)
	if err != nil {
		return fmt.Errorf("store: decide %s: %w", id, err)
	}
	if _, err := tx.Exec(`DELETE FROM files WHERE msg_id = ?`, id); err != nil {
		return err
	}
	if err := insertFiles(tx, id, d.Files); err != nil {
		return err
	}
	return insertLeasedDeliveries(tx, id, d.Deliveries, now, d.LeaseOwner, d.LeaseUntil)
}

func insertFiles(tx *sql.Tx, id string, files []store.FileRef) error {
	for _, f := range files {
		if _, err := tx.Exec(`INSERT INTO files (msg_id, sha256, path, name, type, size)
			VALUES (?,?,?,?,?,?)`, id, f.SHA256, f.Path, f.Name, f.Type, f.Size); err != nil {
			return fmt.Errorf("store: files %s: %w", id, err)
		}
	}
	return nil
}

// Transition implements store.Store.
func (s *DB) Transition(ctx context.Context, id string, from []store.State, to store.State, dels []store.Delivery, audit *store.Audit) error {
	return s.write(ctx, nil, func(tx *sql.Tx) error {
		now := s.now()
		if err := setState(tx, id, from, to, now); err != nil {
			return err
		}
		if audit != nil {
			if err := insertAudit(tx, *audit, now); err != nil {
				return err
			}
		}
		if to == store.Quarantined || to == store.Deleted || to == store.Held || to == store.Rejected {
			if err := cancelDeliveries(tx, id, now); err != nil {
				return err
			}
		}
		return insertDeliveries(tx, id, dels, now)
	})
}

// cancelDeliveries ends the pending deliveries of a message that leaves
// the queue (quarantined after the fact, deleted). A worker holding one
// finds it finished when it settles, and its result is ignored.
func cancelDeliveries(tx *sql.Tx, id string, now time.Time) error {
	_, err := tx.Exec(`UPDATE deliveries SET done_at = ?, last_error = 'cancelled: message left the queue',
		lease_until = 0 WHERE msg_id = ? AND done_at = 0`, us(now), id)
	if err != nil {
		return fmt.Errorf("store: cancel deliveries of %s: %w", id, err)
	}
	return nil
}

func insertDeliveries(tx *sql.Tx, id string, dels []store.Delivery, now time.Time) error {
	return insertLeasedDeliveries(tx, id, dels, now, "", time.Time{})
}

// insertLeasedDeliveries creates deliveries, already leased to owner when
// owner is set, and writes their IDs back into dels.
func insertLeasedDeliveries(tx *sql.Tx, id string, dels []store.Delivery, now time.Time, owner string, until time.Time) error {
	for i, d := range dels {
		next := d.NextAt
		if next.IsZero() {
			next = now
		}
		res, err := tx.Exec(`INSERT INTO deliveries (msg_id, route, mail_from, rcpts, next_at,
			created_at, extra, lease_owner, lease_until) VALUES (?,?,?,?,?,?,?,?,?)`,
			id, d.Route, d.MailFrom, jsonList(d.Rcpts), us(next), us(now), d.Extra, owner, us(until))
		if err != nil {
			return fmt.Errorf("store: queue %s: %w", id, err)
		}
		if dels[i].ID, err = res.LastInsertId(); err != nil {
			return err
		}
		dels[i].MsgID, dels[i].Created, dels[i].NextAt = id, now, next
	}
	return nil
}

// List implements store.Store.
func (s *DB) List(ctx context.Context, f store.Filter) ([]*store.Message, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		// With a hash or ID filter the few rows come through files_sha or
		// the primary key; the unary + keeps SQLite (which has no table
		// statistics) from walking messages_state instead, which reads
		// every row in those states: 55 ms per verdict with 10,000 held.
		col := `state`
		if f.SHA256 != "" || len(f.IDs) > 0 {
			col = `+state`
		}
		where = append(where, col+` IN (`+placeholders(len(f.States))+`)`)
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, `received_at >= ?`)
		args = append(args, us(f.Since))
	}
	if f.Reason != "" {
		where = append(where, `EXISTS (SELECT 1 FROM json_each(messages.reasons) WHERE value = ?)`)
		args = append(args, f.Reason)
	}
	if f.From != "" {
		where = append(where, `(instr(lower(mail_from), lower(?)) > 0 OR instr(lower(hdr_from), lower(?)) > 0)`)
		args = append(args, f.From, f.From)
	}
	if f.Rcpt != "" {
		where = append(where, `EXISTS (SELECT 1 FROM json_each(messages.rcpts) WHERE instr(lower(value), lower(?)) > 0)`)
		args = append(args, f.Rcpt)
	}
	if f.SHA256 != "" {
		where = append(where, `id IN (SELECT msg_id FROM files WHERE sha256 = ?)`)
		args = append(args, strings.ToLower(f.SHA256))
	}
	if len(f.IDs) > 0 {
		where = append(where, `id IN (`+placeholders(len(f.IDs))+`)`)
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	q := `SELECT ` + msgCols + ` FROM messages`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY received_at DESC, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	var out []*store.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// InState implements store.Store.
func (s *DB) InState(ctx context.Context, states ...store.State) ([]string, error) {
	args := make([]any, len(states))
	for i, st := range states {
		args[i] = string(st)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM messages WHERE state IN (`+
		placeholders(len(states))+`) ORDER BY received_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: in state: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// AddAudit implements store.Store.
func (s *DB) AddAudit(ctx context.Context, a store.Audit) error {
	return s.write(ctx, nil, func(tx *sql.Tx) error { return insertAudit(tx, a, s.now()) })
}

func insertAudit(tx *sql.Tx, a store.Audit, now time.Time) error {
	if a.At.IsZero() {
		a.At = now
	}
	_, err := tx.Exec(`INSERT INTO audit (msg_id, at, actor, action, note, detail) VALUES (?,?,?,?,?,?)`,
		a.MsgID, us(a.At), a.Actor, a.Action, a.Note, a.Detail)
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", a.MsgID, err)
	}
	return nil
}

// Audits implements store.Store.
func (s *DB) Audits(ctx context.Context, id string) ([]store.Audit, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT msg_id, at, actor, action, note, detail FROM audit
		WHERE msg_id = ? ORDER BY at, rowid`, id)
	if err != nil {
		return nil, fmt.Errorf("store: audits %s: %w", id, err)
	}
	defer rows.Close()
	var out []store.Audit
	for rows.Next() {
		var a store.Audit
		var at int64
		if err := rows.Scan(&a.MsgID, &at, &a.Actor, &a.Action, &a.Note, &a.Detail); err != nil {
			return nil, err
		}
		a.At = fromUS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func parseList(s string) []string {
	var l []string
	json.Unmarshal([]byte(s), &l)
	return l
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// RemoveContent implements store.Store.
func (s *DB) RemoveContent(ctx context.Context, id string) error {
	m, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if m.State != store.Deleted {
		return fmt.Errorf("store: %s is %s; only deleted messages lose their content", id, m.State)
	}
	if err := s.write(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM spool_inline WHERE id = ?`, id)
		return err
	}); err != nil {
		return fmt.Errorf("store: remove content of %s: %w", id, err)
	}
	err = os.Remove(s.spoolPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// inlineReader is a message kept in the database, read from memory. It
// offers ReadAt like a spool file.
type inlineReader struct{ *bytes.Reader }

func (inlineReader) Close() error { return nil }

// SpoolPath is where the bytes of message id are kept when they are in a
// file (for tests and operators; callers use Open).
func (s *DB) SpoolPath(id string) string { return s.spoolPath(id) }
