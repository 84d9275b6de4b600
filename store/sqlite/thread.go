package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailguard/mailguard/thread"
)

// The conversation memory (thread.Store). One row per message relayed,
// keyed by mailguard ID, with the columns the lookups need indexed
// (Message-ID, thread key, correspondent, time) and the rest as compact
// JSON; relationship counters per address pair and per domain; display
// names of our users; trap-flagged senders; and password candidates,
// which live only until their window ends.
func init() {
	registerMigration("0003_thread", `CREATE TABLE thread_messages (
		id         TEXT PRIMARY KEY,
		message_id TEXT NOT NULL,
		thread     TEXT NOT NULL,
		sender     TEXT NOT NULL,
		at         INTEGER NOT NULL,
		flags      INTEGER NOT NULL,
		outcome    TEXT NOT NULL,
		verdict    TEXT NOT NULL,
		expires    INTEGER NOT NULL,
		rec        BLOB NOT NULL
	);
	CREATE INDEX thread_messages_msgid ON thread_messages(message_id);
	CREATE INDEX thread_messages_thread ON thread_messages(thread, at);
	CREATE INDEX thread_messages_sender ON thread_messages(sender, at);
	CREATE INDEX thread_messages_at ON thread_messages(at);
	CREATE TABLE thread_pairs (
		ext       TEXT NOT NULL,
		internal  TEXT NOT NULL,
		first_at  INTEGER NOT NULL,
		last_at   INTEGER NOT NULL,
		first_dir TEXT NOT NULL,
		inbound   INTEGER NOT NULL,
		outbound  INTEGER NOT NULL,
		payloads  INTEGER NOT NULL,
		PRIMARY KEY (ext, internal)
	) WITHOUT ROWID;
	CREATE INDEX thread_pairs_last ON thread_pairs(last_at);
	CREATE TABLE thread_domains (
		domain    TEXT PRIMARY KEY,
		first_at  INTEGER NOT NULL,
		last_at   INTEGER NOT NULL,
		first_dir TEXT NOT NULL,
		inbound   INTEGER NOT NULL,
		outbound  INTEGER NOT NULL,
		payloads  INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX thread_domains_last ON thread_domains(last_at);
	CREATE TABLE thread_names (
		key     TEXT NOT NULL,
		addr    TEXT NOT NULL,
		name    TEXT NOT NULL,
		last_at INTEGER NOT NULL,
		PRIMARY KEY (key, addr)
	) WITHOUT ROWID;
	CREATE INDEX thread_names_last ON thread_names(last_at);
	CREATE TABLE thread_flags (
		addr   TEXT PRIMARY KEY,
		at     INTEGER NOT NULL,
		detail TEXT NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE thread_secrets (
		msg_id  TEXT NOT NULL,
		value   TEXT NOT NULL,
		at      INTEGER NOT NULL,
		expires INTEGER NOT NULL
	);
	CREATE INDEX thread_secrets_msg ON thread_secrets(msg_id);
	CREATE INDEX thread_secrets_expires ON thread_secrets(expires);`)
}

// Thread returns the conversation memory of the database (thread.Store).
func (s *DB) Thread() thread.Store { return threadStore{s: s} }

type threadStore struct {
	s *DB
	q querier // Lookup's read transaction; nil: the reader pool
}

// querier is what reads need of *sql.DB and *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (x threadStore) reader() querier {
	if x.q != nil {
		return x.q
	}
	return x.s.r
}

var _ thread.Store = threadStore{}

// threadRec is the JSON part of a thread_messages row (short keys: it is
// stored once per message relayed).
type threadRec struct {
	InReplyTo    []string         `json:"i,omitempty"`
	References   []string         `json:"r,omitempty"`
	Subject      string           `json:"s,omitempty"`
	Direction    thread.Direction `json:"d"`
	From         thread.Address   `json:"f"`
	MailFrom     string           `json:"m,omitempty"`
	Participants []thread.Address `json:"p,omitempty"`
	External     []string         `json:"e,omitempty"`
	Internal     []string         `json:"n,omitempty"`
}

type execFunc func(query string, args ...any) (sql.Result, error)

// Record implements thread.Store.
func (x threadStore) Record(ctx context.Context, r thread.Record) error {
	return x.s.write(ctx, nil, func(tx *sql.Tx) error { return recordThread(tx.Exec, r) })
}

// recordThread writes one record: the row (or its outcome when it exists),
// its secrets, and the first time also the counters and names.
func recordThread(exec execFunc, r thread.Record) error {
	rec, err := json.Marshal(threadRec{InReplyTo: r.InReplyTo, References: r.References, Subject: r.Subject,
		Direction: r.Direction, From: r.From, MailFrom: r.MailFrom, Participants: r.Participants,
		External: r.External, Internal: r.Internal})
	if err != nil {
		return err
	}
	res, err := exec(`INSERT INTO thread_messages (id, message_id, thread, sender, at, flags, outcome, verdict, expires, rec)
		VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`,
		r.ID, r.MessageID, r.Thread, thread.SenderOf(&r), us(r.At), int64(r.Flags), string(r.Outcome), r.Verdict, us(r.Expires), rec)
	if err != nil {
		return fmt.Errorf("store: thread record %s: %w", r.ID, err)
	}
	inserted, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if inserted == 0 {
		if _, err := exec(`UPDATE thread_messages SET flags = ?, outcome = ?, verdict = ?, expires = ? WHERE id = ?`,
			int64(r.Flags), string(r.Outcome), r.Verdict, us(r.Expires), r.ID); err != nil {
			return err
		}
		if _, err := exec(`DELETE FROM thread_secrets WHERE msg_id = ?`, r.ID); err != nil {
			return err
		}
	}
	if r.Expires.After(r.At) {
		for _, v := range r.Passwords {
			if _, err := exec(`INSERT INTO thread_secrets (msg_id, value, at, expires) VALUES (?,?,?,?)`,
				r.ID, v, us(r.At), us(r.Expires)); err != nil {
				return err
			}
		}
	}
	if inserted == 0 {
		return nil
	}
	return countThread(exec, r)
}

const pairUpsert = ` ON CONFLICT DO UPDATE SET
	first_dir = CASE WHEN excluded.first_at < first_at THEN excluded.first_dir ELSE first_dir END,
	first_at = min(first_at, excluded.first_at), last_at = max(last_at, excluded.last_at),
	inbound = inbound + excluded.inbound, outbound = outbound + excluded.outbound,
	payloads = payloads + excluded.payloads`

// countThread adds a new message to the relationship counters and, for
// outbound mail, remembers our user's display name.
func countThread(exec execFunc, r thread.Record) error {
	in, out, pay := 0, 0, 0
	if r.Direction == thread.Outbound {
		out = 1
	} else {
		in = 1
		if r.Flags.Payload() {
			pay = 1
		}
	}
	at := us(r.At)
	for _, e := range r.External {
		for _, i := range r.Internal {
			if _, err := exec(`INSERT INTO thread_pairs (ext, internal, first_at, last_at, first_dir, inbound, outbound, payloads)
				VALUES (?,?,?,?,?,?,?,?)`+pairUpsert, e, i, at, at, string(r.Direction), in, out, pay); err != nil {
				return fmt.Errorf("store: thread pair: %w", err)
			}
		}
	}
	var doms []string
	for _, e := range r.External {
		if d := thread.RegistrableOf(e); d != "" && !containsString(doms, d) {
			doms = append(doms, d)
			if _, err := exec(`INSERT INTO thread_domains (domain, first_at, last_at, first_dir, inbound, outbound, payloads)
				VALUES (?,?,?,?,?,?,?)`+pairUpsert, d, at, at, string(r.Direction), in, out, pay); err != nil {
				return fmt.Errorf("store: thread domain: %w", err)
			}
		}
	}
	if r.Direction == thread.Outbound && r.From.Name != "" && r.From.Addr != "" {
		if k := thread.NameKey(r.From.Name); k != "" {
			if _, err := exec(`INSERT INTO thread_names (key, addr, name, last_at) VALUES (?,?,?,?)
				ON CONFLICT DO UPDATE SET name = excluded.name, last_at = max(last_at, excluded.last_at)`,
				k, r.From.Addr, r.From.Name, at); err != nil {
				return fmt.Errorf("store: thread name: %w", err)
			}
		}
	}
	return nil
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

const threadCols = `id, message_id, thread, at, flags, outcome, verdict, expires, rec`

func scanThread(row interface{ Scan(...any) error }) (thread.Record, error) {
	var r thread.Record
	var at, exp, flags int64
	var outcome string
	var rec []byte
	if err := row.Scan(&r.ID, &r.MessageID, &r.Thread, &at, &flags, &outcome, &r.Verdict, &exp, &rec); err != nil {
		return r, err
	}
	var j threadRec
	if err := json.Unmarshal(rec, &j); err != nil {
		return r, fmt.Errorf("store: thread record %s: %w", r.ID, err)
	}
	r.At, r.Expires, r.Flags, r.Outcome = fromUS(at), fromUS(exp), thread.Flags(flags), thread.Outcome(outcome)
	r.InReplyTo, r.References, r.Subject, r.Direction = j.InReplyTo, j.References, j.Subject, j.Direction
	r.From, r.MailFrom, r.Participants, r.External, r.Internal = j.From, j.MailFrom, j.Participants, j.External, j.Internal
	return r, nil
}

func (x threadStore) records(ctx context.Context, query string, args ...any) ([]thread.Record, error) {
	rows, err := x.reader().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []thread.Record
	for rows.Next() {
		r, err := scanThread(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func strArgs(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// Lookup implements thread.Store. Every query is an index lookup.
//
// The queries share one read transaction on one connection: one snapshot
// for the whole history, and the log's read locks and change check taken
// once per message instead of up to seven times.
func (x threadStore) Lookup(ctx context.Context, q thread.Query) (*thread.History, error) {
	conn, err := x.s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: thread lookup: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return nil, fmt.Errorf("store: thread lookup: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
	return threadStore{s: x.s, q: conn}.lookup(ctx, q)
}

func (x threadStore) lookup(ctx context.Context, q thread.Query) (*thread.History, error) {
	h := &thread.History{}
	var err error
	if q.Exclude != "" {
		rs, err := x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE id = ?`, q.Exclude)
		if err != nil {
			return nil, fmt.Errorf("store: thread self: %w", err)
		}
		if len(rs) > 0 {
			h.Self = &rs[0]
		}
	}
	if len(q.Refs) > 0 {
		h.Parents, err = x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE message_id IN (`+
			placeholders(len(q.Refs))+`) ORDER BY at DESC LIMIT 100`, strArgs(q.Refs)...)
		if err != nil {
			return nil, fmt.Errorf("store: thread parents: %w", err)
		}
	}
	if len(h.Parents) > 0 {
		key := thread.ThreadKey("", "", nil, nil, h.Parents)
		h.Thread, err = x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE thread = ? ORDER BY at DESC LIMIT ?`,
			key, thread.MaxThread)
		if err != nil {
			return nil, fmt.Errorf("store: thread: %w", err)
		}
	}
	if q.Sender != "" && len(q.Internal) > 0 {
		if h.Pairs, err = x.pairs(ctx, `SELECT ext, internal, first_at, last_at, first_dir, inbound, outbound, payloads
			FROM thread_pairs WHERE ext = ? AND internal IN (`+placeholders(len(q.Internal))+`) ORDER BY internal`,
			append([]any{q.Sender}, strArgs(q.Internal)...)...); err != nil {
			return nil, err
		}
	}
	if q.Domain != "" {
		ds, err := x.pairs(ctx, `SELECT domain, '', first_at, last_at, first_dir, inbound, outbound, payloads
			FROM thread_domains WHERE domain = ?`, q.Domain)
		if err != nil {
			return nil, err
		}
		if len(ds) > 0 {
			h.Domain = ds[0]
		}
	}
	if err := x.lookupFlagsNames(ctx, q, h); err != nil {
		return nil, err
	}
	return h, nil
}

func (x threadStore) lookupFlagsNames(ctx context.Context, q thread.Query, h *thread.History) error {
	var flagged []string
	for _, a := range q.Flagged {
		if a != "" {
			flagged = append(flagged, a)
		}
	}
	if len(flagged) > 0 {
		rows, err := x.reader().QueryContext(ctx, `SELECT addr FROM thread_flags WHERE addr IN (`+placeholders(len(flagged))+`)`, strArgs(flagged)...)
		if err != nil {
			return fmt.Errorf("store: thread flags: %w", err)
		}
		found := map[string]bool{}
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return err
			}
			found[a] = true
		}
		rows.Close()
		for _, a := range flagged {
			if found[a] {
				h.Flagged = a
				break
			}
		}
	}
	if q.NameKey == "" {
		return nil
	}
	rows, err := x.reader().QueryContext(ctx, `SELECT addr, name FROM thread_names WHERE key = ? ORDER BY addr LIMIT 100`, q.NameKey)
	if err != nil {
		return fmt.Errorf("store: thread names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a thread.Address
		if err := rows.Scan(&a.Addr, &a.Name); err != nil {
			return err
		}
		h.Names = append(h.Names, a)
	}
	return rows.Err()
}

func (x threadStore) pairs(ctx context.Context, query string, args ...any) ([]thread.Pair, error) {
	rows, err := x.reader().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: thread pairs: %w", err)
	}
	defer rows.Close()
	var out []thread.Pair
	for rows.Next() {
		var p thread.Pair
		var first, last int64
		var dir string
		if err := rows.Scan(&p.External, &p.Internal, &first, &last, &dir, &p.Inbound, &p.Outbound, &p.Payloads); err != nil {
			return nil, err
		}
		p.First, p.Last, p.FirstDir = fromUS(first), fromUS(last), thread.Direction(dir)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Recent implements thread.Store.
func (x threadStore) Recent(ctx context.Context, rel thread.Relation) ([]thread.Record, error) {
	var out []thread.Record
	seen := map[string]bool{}
	add := func(rs []thread.Record) {
		for _, r := range rs {
			if !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	if rel.Sender != "" && len(rel.Internal) > 0 {
		rs, err := x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE sender = ? AND at >= ? ORDER BY at DESC LIMIT ?`,
			rel.Sender, us(rel.Since), thread.MaxThread)
		if err != nil {
			return nil, fmt.Errorf("store: thread recent: %w", err)
		}
		var keep []thread.Record
		for _, r := range rs {
			for _, i := range r.Internal {
				if containsString(rel.Internal, i) {
					keep = append(keep, r)
					break
				}
			}
		}
		add(keep)
	}
	if rel.Thread != "" {
		rs, err := x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE thread = ? AND at >= ? ORDER BY at DESC LIMIT ?`,
			rel.Thread, us(rel.Since), thread.MaxThread)
		if err != nil {
			return nil, fmt.Errorf("store: thread recent: %w", err)
		}
		add(rs)
	}
	sortNewest(out)
	if len(out) > thread.MaxThread {
		out = out[:thread.MaxThread]
	}
	return out, nil
}

func sortNewest(rs []thread.Record) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].At.After(rs[j-1].At); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// Passwords implements thread.Store.
func (x threadStore) Passwords(ctx context.Context, ids []string, now time.Time) ([]thread.Secret, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := x.s.r.QueryContext(ctx, `SELECT msg_id, value, at FROM thread_secrets WHERE msg_id IN (`+
		placeholders(len(ids))+`) AND expires > ? ORDER BY at DESC, rowid`, append(strArgs(ids), us(now))...)
	if err != nil {
		return nil, fmt.Errorf("store: thread passwords: %w", err)
	}
	defer rows.Close()
	var out []thread.Secret
	for rows.Next() {
		var sec thread.Secret
		var at int64
		if err := rows.Scan(&sec.MsgID, &sec.Value, &at); err != nil {
			return nil, err
		}
		sec.At = fromUS(at)
		out = append(out, sec)
	}
	return out, rows.Err()
}

// Flag implements thread.Store.
func (x threadStore) Flag(ctx context.Context, addr string, at time.Time, detail string) error {
	addr = strings.ToLower(addr)
	if addr == "" {
		return errors.New("store: flag: empty address")
	}
	return x.s.write(ctx, nil, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO thread_flags (addr, at, detail) VALUES (?,?,?)
			ON CONFLICT DO UPDATE SET at = max(at, excluded.at), detail = excluded.detail`, addr, us(at), detail)
		return err
	})
}

// Correspondents implements thread.Store. It reads the domain table (one
// row per domain, not per message); the gateway caches the answer.
func (x threadStore) Correspondents(ctx context.Context, limit int) ([]thread.Pair, error) {
	return x.pairs(ctx, `SELECT domain, '', first_at, last_at, first_dir, inbound, outbound, payloads
		FROM thread_domains WHERE outbound > 0 ORDER BY inbound + outbound DESC, domain LIMIT ?`, limit)
}

// Purge implements thread.Store.
func (x threadStore) Purge(ctx context.Context, before, now time.Time) (int64, error) {
	var n int64
	err := x.s.write(ctx, nil, func(tx *sql.Tx) error {
		b := us(before)
		for _, q := range []struct {
			sql string
			arg int64
		}{
			{`DELETE FROM thread_messages WHERE at < ?`, b},
			{`DELETE FROM thread_pairs WHERE last_at < ?`, b},
			{`DELETE FROM thread_domains WHERE last_at < ?`, b},
			{`DELETE FROM thread_names WHERE last_at < ?`, b},
			{`DELETE FROM thread_flags WHERE at < ?`, b},
			{`DELETE FROM thread_secrets WHERE expires <= ?`, us(now)},
		} {
			res, err := tx.Exec(q.sql, q.arg)
			if err != nil {
				return fmt.Errorf("store: thread purge: %w", err)
			}
			c, _ := res.RowsAffected()
			n += c
		}
		return nil
	})
	return n, err
}
