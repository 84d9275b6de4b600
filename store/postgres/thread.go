package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailguard/mailguard/thread"
)

// The conversation memory (thread.Store), shared by every node: one row
// per message relayed, keyed by mailguard ID, with the columns the lookups
// need indexed and the rest as compact JSON; relationship counters per
// address pair and per domain; display names of our users; trap-flagged
// senders; and password candidates, kept only until their window ends.

// Thread returns the conversation memory of the database (thread.Store).
func (s *DB) Thread() thread.Store { return threadStore{s} }

type threadStore struct{ s *DB }

var _ thread.Store = threadStore{}

// threadRec is the JSON part of a thread_messages row (short keys: it is
// stored once per message relayed). The same encoding as store/sqlite.
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

// Record implements thread.Store. Recording an ID again updates the
// outcome and the secrets, never the counters: the INSERT … ON CONFLICT
// DO NOTHING decides, and a node recording the same ID at the same moment
// waits for the first and then counts nothing.
func (x threadStore) Record(ctx context.Context, r thread.Record) error {
	rec, err := json.Marshal(threadRec{InReplyTo: r.InReplyTo, References: r.References, Subject: r.Subject,
		Direction: r.Direction, From: r.From, MailFrom: r.MailFrom, Participants: r.Participants,
		External: r.External, Internal: r.Internal})
	if err != nil {
		return err
	}
	err = x.s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO thread_messages (id, message_id, thread, sender, at, flags, outcome,
			verdict, expires, rec) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO NOTHING`,
			clean(r.ID), clean(r.MessageID), clean(r.Thread), clean(thread.SenderOf(&r)), r.At, int32(r.Flags),
			clean(string(r.Outcome)), clean(r.Verdict), tz(r.Expires), rec)
		if err != nil {
			return err
		}
		inserted := tag.RowsAffected() == 1
		var b pgx.Batch
		if !inserted {
			b.Queue(`UPDATE thread_messages SET flags = $1, outcome = $2, verdict = $3, expires = $4 WHERE id = $5`,
				int32(r.Flags), clean(string(r.Outcome)), clean(r.Verdict), tz(r.Expires), clean(r.ID))
			b.Queue(`DELETE FROM thread_secrets WHERE msg_id = $1`, clean(r.ID))
		}
		if r.Expires.After(r.At) {
			for _, v := range r.Passwords {
				b.Queue(`INSERT INTO thread_secrets (msg_id, value, at, expires) VALUES ($1,$2,$3,$4)`,
					clean(r.ID), []byte(v), r.At, r.Expires)
			}
		}
		if inserted {
			queueCounters(&b, r)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("store: thread record %s: %w", r.ID, err)
	}
	return nil
}

// counterUpsert adds a message to a relationship row (pair or domain).
const counterUpsert = ` DO UPDATE SET
	first_dir = CASE WHEN excluded.first_at < %[1]s.first_at THEN excluded.first_dir ELSE %[1]s.first_dir END,
	first_at = least(%[1]s.first_at, excluded.first_at), last_at = greatest(%[1]s.last_at, excluded.last_at),
	inbound = %[1]s.inbound + excluded.inbound, outbound = %[1]s.outbound + excluded.outbound,
	payloads = %[1]s.payloads + excluded.payloads`

var (
	pairUpsert   = fmt.Sprintf(counterUpsert, "thread_pairs")
	domainUpsert = fmt.Sprintf(counterUpsert, "thread_domains")
)

// queueCounters adds a new message to the relationship counters and, for
// outbound mail, remembers our user's display name. Keys are upserted in
// sorted order, so that two nodes counting messages of the same people
// lock the rows in the same order.
func queueCounters(b *pgx.Batch, r thread.Record) {
	in, out, pay := 0, 0, 0
	if r.Direction == thread.Outbound {
		out = 1
	} else {
		in = 1
		if r.Flags.Payload() {
			pay = 1
		}
	}
	ext, internal := sortedUnique(r.External), sortedUnique(r.Internal)
	for _, e := range ext {
		for _, i := range internal {
			b.Queue(`INSERT INTO thread_pairs (ext, internal, first_at, last_at, first_dir, inbound, outbound, payloads)
				VALUES ($1,$2,$3,$3,$4,$5,$6,$7) ON CONFLICT (ext, internal)`+pairUpsert,
				e, i, r.At, clean(string(r.Direction)), in, out, pay)
		}
	}
	var doms []string
	for _, e := range r.External {
		if d := thread.RegistrableOf(e); d != "" {
			doms = append(doms, d)
		}
	}
	for _, d := range sortedUnique(doms) {
		b.Queue(`INSERT INTO thread_domains (domain, first_at, last_at, first_dir, inbound, outbound, payloads)
			VALUES ($1,$2,$2,$3,$4,$5,$6) ON CONFLICT (domain)`+domainUpsert,
			d, r.At, clean(string(r.Direction)), in, out, pay)
	}
	if r.Direction == thread.Outbound && r.From.Name != "" && r.From.Addr != "" {
		if k := thread.NameKey(r.From.Name); k != "" {
			b.Queue(`INSERT INTO thread_names (key, addr, name, last_at) VALUES ($1,$2,$3,$4)
				ON CONFLICT (key, addr) DO UPDATE SET name = excluded.name,
				last_at = greatest(thread_names.last_at, excluded.last_at)`,
				clean(k), clean(r.From.Addr), clean(r.From.Name), r.At)
		}
	}
}

// sortedUnique returns the cleaned values of l, sorted, without repeats.
func sortedUnique(l []string) []string {
	out := cleanAll(l)
	slices.Sort(out)
	return slices.Compact(out)
}

const threadCols = `id, message_id, thread, at, flags, outcome, verdict, expires, rec`

func scanThread(row pgx.Row) (thread.Record, error) {
	var r thread.Record
	var at, exp *time.Time
	var flags int32
	var outcome string
	var rec []byte
	if err := row.Scan(&r.ID, &r.MessageID, &r.Thread, &at, &flags, &outcome, &r.Verdict, &exp, &rec); err != nil {
		return r, err
	}
	var j threadRec
	if err := json.Unmarshal(rec, &j); err != nil {
		return r, fmt.Errorf("store: thread record %s: %w", r.ID, err)
	}
	r.At, r.Expires, r.Flags, r.Outcome = utc(at), utc(exp), thread.Flags(flags), thread.Outcome(outcome)
	r.InReplyTo, r.References, r.Subject, r.Direction = j.InReplyTo, j.References, j.Subject, j.Direction
	r.From, r.MailFrom, r.Participants, r.External, r.Internal = j.From, j.MailFrom, j.Participants, j.External, j.Internal
	return r, nil
}

func (x threadStore) records(ctx context.Context, query string, args ...any) ([]thread.Record, error) {
	rows, _ := x.s.pool.Query(ctx, query, args...)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (thread.Record, error) { return scanThread(r) })
}

// Lookup implements thread.Store. Every query is an index lookup.
func (x threadStore) Lookup(ctx context.Context, q thread.Query) (*thread.History, error) {
	h := &thread.History{}
	var err error
	if q.Exclude != "" {
		rs, err := x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE id = $1`, clean(q.Exclude))
		if err != nil {
			return nil, fmt.Errorf("store: thread self: %w", err)
		}
		if len(rs) > 0 {
			h.Self = &rs[0]
		}
	}
	if len(q.Refs) > 0 {
		h.Parents, err = x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE message_id = ANY($1)
			ORDER BY at DESC LIMIT 100`, cleanAll(q.Refs))
		if err != nil {
			return nil, fmt.Errorf("store: thread parents: %w", err)
		}
	}
	if len(h.Parents) > 0 {
		key := thread.ThreadKey("", "", nil, nil, h.Parents)
		h.Thread, err = x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE thread = $1
			ORDER BY at DESC LIMIT $2`, clean(key), thread.MaxThread)
		if err != nil {
			return nil, fmt.Errorf("store: thread: %w", err)
		}
	}
	if q.Sender != "" && len(q.Internal) > 0 {
		if h.Pairs, err = x.pairs(ctx, `SELECT ext, internal, first_at, last_at, first_dir, inbound, outbound, payloads
			FROM thread_pairs WHERE ext = $1 AND internal = ANY($2) ORDER BY internal`,
			clean(q.Sender), cleanAll(q.Internal)); err != nil {
			return nil, err
		}
	}
	if q.Domain != "" {
		ds, err := x.pairs(ctx, `SELECT domain, '', first_at, last_at, first_dir, inbound, outbound, payloads
			FROM thread_domains WHERE domain = $1`, clean(q.Domain))
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
			flagged = append(flagged, clean(a))
		}
	}
	if len(flagged) > 0 {
		found, err := x.s.queryIDs(ctx, `SELECT addr FROM thread_flags WHERE addr = ANY($1)`, flagged)
		if err != nil {
			return fmt.Errorf("store: thread flags: %w", err)
		}
		for _, a := range flagged {
			if slices.Contains(found, a) {
				h.Flagged = a
				break
			}
		}
	}
	if q.NameKey == "" {
		return nil
	}
	rows, _ := x.s.pool.Query(ctx, `SELECT addr, name FROM thread_names WHERE key = $1 ORDER BY addr LIMIT 100`, clean(q.NameKey))
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (thread.Address, error) {
		var a thread.Address
		err := r.Scan(&a.Addr, &a.Name)
		return a, err
	})
	if err != nil {
		return fmt.Errorf("store: thread names: %w", err)
	}
	if len(names) > 0 {
		h.Names = names
	}
	return nil
}

func (x threadStore) pairs(ctx context.Context, query string, args ...any) ([]thread.Pair, error) {
	rows, _ := x.s.pool.Query(ctx, query, args...)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (thread.Pair, error) {
		var p thread.Pair
		var first, last *time.Time
		var dir string
		err := r.Scan(&p.External, &p.Internal, &first, &last, &dir, &p.Inbound, &p.Outbound, &p.Payloads)
		p.First, p.Last, p.FirstDir = utc(first), utc(last), thread.Direction(dir)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: thread pairs: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
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
		rs, err := x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE sender = $1 AND at >= $2
			ORDER BY at DESC LIMIT $3`, clean(rel.Sender), rel.Since, thread.MaxThread)
		if err != nil {
			return nil, fmt.Errorf("store: thread recent: %w", err)
		}
		internal := cleanAll(rel.Internal)
		var keep []thread.Record
		for _, r := range rs {
			if slices.ContainsFunc(r.Internal, func(i string) bool { return slices.Contains(internal, clean(i)) }) {
				keep = append(keep, r)
			}
		}
		add(keep)
	}
	if rel.Thread != "" {
		rs, err := x.records(ctx, `SELECT `+threadCols+` FROM thread_messages WHERE thread = $1 AND at >= $2
			ORDER BY at DESC LIMIT $3`, clean(rel.Thread), rel.Since, thread.MaxThread)
		if err != nil {
			return nil, fmt.Errorf("store: thread recent: %w", err)
		}
		add(rs)
	}
	slices.SortStableFunc(out, func(a, b thread.Record) int { return b.At.Compare(a.At) })
	if len(out) > thread.MaxThread {
		out = out[:thread.MaxThread]
	}
	return out, nil
}

// Passwords implements thread.Store.
func (x threadStore) Passwords(ctx context.Context, ids []string, now time.Time) ([]thread.Secret, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, _ := x.s.pool.Query(ctx, `SELECT msg_id, value, at FROM thread_secrets WHERE msg_id = ANY($1)
		AND expires > $2 ORDER BY at DESC, id`, cleanAll(ids), now)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (thread.Secret, error) {
		var sec thread.Secret
		var v []byte
		var at *time.Time
		err := r.Scan(&sec.MsgID, &v, &at)
		sec.Value, sec.At = string(v), utc(at)
		return sec, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: thread passwords: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Flag implements thread.Store.
func (x threadStore) Flag(ctx context.Context, addr string, at time.Time, detail string) error {
	addr = strings.ToLower(addr)
	if addr == "" {
		return errors.New("store: flag: empty address")
	}
	_, err := x.s.pool.Exec(ctx, `INSERT INTO thread_flags (addr, at, detail) VALUES ($1,$2,$3)
		ON CONFLICT (addr) DO UPDATE SET at = greatest(thread_flags.at, excluded.at), detail = excluded.detail`,
		clean(addr), at, clean(detail))
	if err != nil {
		return fmt.Errorf("store: flag %s: %w", addr, err)
	}
	return nil
}

// Correspondents implements thread.Store. It reads the domain table (one
// row per domain, not per message); the gateway caches the answer.
func (x threadStore) Correspondents(ctx context.Context, limit int) ([]thread.Pair, error) {
	return x.pairs(ctx, `SELECT domain, '', first_at, last_at, first_dir, inbound, outbound, payloads
		FROM thread_domains WHERE outbound > 0 ORDER BY inbound + outbound DESC, domain LIMIT $1`, limit)
}

// Purge implements thread.Store.
func (x threadStore) Purge(ctx context.Context, before, now time.Time) (int64, error) {
	var n int64
	err := x.s.tx(ctx, func(tx pgx.Tx) error {
		n = 0
		for _, q := range []struct {
			sql string
			arg time.Time
		}{
			{`DELETE FROM thread_messages WHERE at < $1`, before},
			{`DELETE FROM thread_pairs WHERE last_at < $1`, before},
			{`DELETE FROM thread_domains WHERE last_at < $1`, before},
			{`DELETE FROM thread_names WHERE last_at < $1`, before},
			{`DELETE FROM thread_flags WHERE at < $1`, before},
			{`DELETE FROM thread_secrets WHERE expires <= $1`, now},
		} {
			tag, err := tx.Exec(ctx, q.sql, q.arg)
			if err != nil {
				return fmt.Errorf("store: thread purge: %w", err)
			}
			n += tag.RowsAffected()
		}
		return nil
	})
	return n, err
}
