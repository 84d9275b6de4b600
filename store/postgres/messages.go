package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailguard/mailguard/store"
)

// validID accepts the IDs the SQLite store accepts (smtp.NewID and DSN
// IDs), so that both stores refuse the same input.
func validID(id string) bool {
	if id == "" || len(id) > 64 || id[0] == '.' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Accept implements store.Store. The bytes are first read to the end (in
// memory up to one chunk, then into an unlinked temporary file), so that
// a slow client does not hold a database connection; then the row and the
// bytes are inserted in one transaction, and Accept returns only after its
// COMMIT (synchronous_commit on): durable before the 250.
func (s *DB) Accept(ctx context.Context, m *store.Message, r io.Reader) (int64, error) {
	if !validID(m.ID) {
		return 0, fmt.Errorf("store: invalid message id %q", m.ID)
	}
	b := s.newBuffer()
	defer b.Close()
	n, err := b.readFrom(r, s.chunk)
	if err != nil {
		return n, err
	}
	m.Size = n
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = s.now()
	}
	m.State = store.Received
	if b.f == nil {
		// The common case, one chunk: row and bytes in one round trip.
		err = s.batch(ctx, func(bt *pgx.Batch) {
			queueMessage(bt, m, s.now())
			bt.Queue(`INSERT INTO spool (msg_id, seq, data) VALUES ($1, 0, $2)`, m.ID, nonNilBytes(b.mem))
		}, func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("store: insert %s: %w", m.ID, err)
			}
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("store: spool %s: %w", m.ID, err)
			}
			return nil
		})
		return n, err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if err := insertMessage(ctx, tx, m, s.now()); err != nil {
			return err
		}
		if err := s.writeChunks(ctx, tx, "spool", "msg_id", m.ID, b); err != nil {
			return fmt.Errorf("store: spool %s: %w", m.ID, err)
		}
		return nil
	})
	return n, err
}

// AcceptDecided implements store.Store: the row, the bytes and the
// decision (file index, deliveries) in one transaction. A message of one
// chunk takes one round trip with BEGIN and one for COMMIT.
func (s *DB) AcceptDecided(ctx context.Context, m *store.Message, data []byte, d store.Decided) error {
	if !validID(m.ID) {
		return fmt.Errorf("store: invalid message id %q", m.ID)
	}
	m.Size = int64(len(data))
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = s.now()
	}
	m.State = store.Received
	from := []store.State{store.Received}
	if len(data) > s.chunk {
		return s.tx(ctx, func(tx pgx.Tx) error {
			now := s.now()
			if err := insertMessage(ctx, tx, m, now); err != nil {
				return err
			}
			b := &buffer{dir: s.tmp, limit: len(data), mem: data, size: int64(len(data))}
			if err := s.writeChunks(ctx, tx, "spool", "msg_id", m.ID, b); err != nil {
				return fmt.Errorf("store: spool %s: %w", m.ID, err)
			}
			var bt pgx.Batch
			queueDecide(&bt, m.ID, from, d, now)
			br := tx.SendBatch(ctx, &bt)
			err := readDecide(br, m.ID, d, now)
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			return err
		})
	}
	var now time.Time
	return s.batchTx(ctx, func(b *pgx.Batch) {
		now = s.now()
		queueMessage(b, m, now)
		b.Queue(`INSERT INTO spool (msg_id, seq, data) VALUES ($1, 0, $2)`, m.ID, nonNilBytes(data))
		queueDecide(b, m.ID, from, d, now)
	}, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("store: insert %s: %w", m.ID, err)
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("store: spool %s: %w", m.ID, err)
		}
		return readDecide(br, m.ID, d, now)
	})
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const insertMessageSQL = `INSERT INTO messages (id, received_at, state, state_at, direction,
	client_ip, helo, proto, smtputf8, eightbit, mail_from, rcpts, size, message_id, hdr_from,
	subject, action, reasons, score, decision, prepend, hold_until)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22)`

func messageArgs(m *store.Message, now time.Time) []any {
	return []any{m.ID, m.ReceivedAt, string(m.State), now, clean(m.Direction), clean(m.ClientIP), clean(m.HELO),
		clean(m.Proto), m.SMTPUTF8, m.EightBit, clean(m.MailFrom), cleanAll(m.Rcpts), m.Size,
		clean(m.MessageID), clean(m.From), clean(m.Subject), clean(m.Action), cleanAll(m.Reasons),
		m.Score, []byte(m.Decision), m.Prepend, tz(m.HoldUntil)}
}

func queueMessage(b *pgx.Batch, m *store.Message, now time.Time) {
	b.Queue(insertMessageSQL, messageArgs(m, now)...)
}

func insertMessage(ctx context.Context, tx pgx.Tx, m *store.Message, now time.Time) error {
	if _, err := tx.Exec(ctx, insertMessageSQL, messageArgs(m, now)...); err != nil {
		return fmt.Errorf("store: insert %s: %w", m.ID, err)
	}
	return nil
}

// queueDSN records bytes produced by mailguard itself (a DSN) as a
// queued message with its delivery, inside the caller's transaction.
func (s *DB) queueDSN(ctx context.Context, tx pgx.Tx, dsn *store.Message, body []byte) error {
	if dsn == nil {
		return nil
	}
	if !validID(dsn.ID) {
		return fmt.Errorf("store: invalid message id %q", dsn.ID)
	}
	now := s.now()
	dsn.State, dsn.Size = store.Queued, int64(len(body))
	if dsn.ReceivedAt.IsZero() {
		dsn.ReceivedAt = now
	}
	if err := insertMessage(ctx, tx, dsn, now); err != nil {
		return err
	}
	b := &buffer{dir: s.tmp, limit: len(body), mem: body, size: int64(len(body))}
	if err := s.writeChunks(ctx, tx, "spool", "msg_id", dsn.ID, b); err != nil {
		return fmt.Errorf("store: spool %s: %w", dsn.ID, err)
	}
	route := "inbound"
	if dsn.Direction == "outbound" {
		route = "outbound"
	}
	return insertDeliveries(ctx, tx, dsn.ID, []store.Delivery{{Route: route, Rcpts: dsn.Rcpts}}, now, "", time.Time{})
}

// Open implements store.Store. A message of one chunk is returned in
// memory; a larger one through an unlinked temporary file, streamed from
// the database chunk by chunk.
func (s *DB) Open(ctx context.Context, id string) (io.ReadSeekCloser, error) {
	if !validID(id) {
		return nil, store.ErrNotFound
	}
	r, found, err := s.readChunks(ctx, "spool", "msg_id", id)
	if err != nil {
		return nil, fmt.Errorf("store: spool %s: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("store: spool %s: %w", id, store.ErrNotFound)
	}
	return r, nil
}

const msgCols = `id, received_at, state, state_at, direction, client_ip, helo, proto, smtputf8, eightbit,
	mail_from, rcpts, size, message_id, hdr_from, subject, action, reasons, score, decision, prepend,
	hold_until`

func scanMessage(row pgx.Row) (*store.Message, error) {
	var m store.Message
	var recv, stAt, hold *time.Time
	var st string
	var decision, prepend []byte
	err := row.Scan(&m.ID, &recv, &st, &stAt, &m.Direction, &m.ClientIP, &m.HELO, &m.Proto, &m.SMTPUTF8,
		&m.EightBit, &m.MailFrom, &m.Rcpts, &m.Size, &m.MessageID, &m.From, &m.Subject, &m.Action,
		&m.Reasons, &m.Score, &decision, &prepend, &hold)
	if err != nil {
		return nil, err
	}
	m.ReceivedAt, m.StateAt, m.HoldUntil = utc(recv), utc(stAt), utc(hold)
	m.State = store.State(st)
	m.Rcpts, m.Reasons = nonNil(m.Rcpts), nonNil(m.Reasons)
	if len(decision) > 0 {
		m.Decision = json.RawMessage(decision)
	}
	if len(prepend) > 0 {
		m.Prepend = prepend
	}
	return &m, nil
}

// Get implements store.Store.
func (s *DB) Get(ctx context.Context, id string) (*store.Message, error) {
	if !validID(id) {
		return nil, store.ErrNotFound
	}
	m, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+msgCols+` FROM messages WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	rows, _ := s.pool.Query(ctx, `SELECT sha256, path, name, type, size FROM files WHERE msg_id = $1 ORDER BY id`, id)
	m.Files, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.FileRef, error) {
		var f store.FileRef
		err := r.Scan(&f.SHA256, &f.Path, &f.Name, &f.Type, &f.Size)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: files %s: %w", id, err)
	}
	if len(m.Files) == 0 {
		m.Files = nil
	}
	return m, nil
}

// setState moves id from one of from (any state when from is empty) to
// to; ErrNotFound or ErrState when it cannot. The UPDATE locks the row:
// a concurrent transition (another node, the CLI) waits for this one and
// then finds the state changed, so each transition happens once.
func setState(ctx context.Context, tx pgx.Tx, id string, from []store.State, to store.State, now time.Time) error {
	if !validID(id) {
		return store.ErrNotFound
	}
	q := `UPDATE messages SET state = $1, state_at = $2 WHERE id = $3`
	args := []any{string(to), now, id}
	if len(from) > 0 {
		q += ` AND state = ANY($4)`
		args = append(args, states(from))
	}
	tag, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: state %s → %s: %w", id, to, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var cur string
	err = tx.QueryRow(ctx, `SELECT state FROM messages WHERE id = $1`, id).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s is %s, not %v", store.ErrState, id, cur, from)
}

func states(l []store.State) []string {
	out := make([]string, len(l))
	for i, st := range l {
		out[i] = string(st)
	}
	return out
}

// errNoMatch ends a conditional transaction whose row was not in an
// expected state; stateError says which error that is.
var errNoMatch = errors.New("store: no row matched")

// stateError explains why a conditional update of id matched nothing.
func (s *DB) stateError(ctx context.Context, id string, from []store.State) error {
	var cur string
	err := s.pool.QueryRow(ctx, `SELECT state FROM messages WHERE id = $1`, id).Scan(&cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: state of %s: %w", id, err)
	}
	return fmt.Errorf("%w: %s is %s, not %v", store.ErrState, id, cur, from)
}

// Decide implements store.Store: the conditional state change with the
// decision, the file index and the deliveries go in one round trip with
// their BEGIN; COMMIT follows only if the message was in a from state.
func (s *DB) Decide(ctx context.Context, id string, from []store.State, d store.Decided) error {
	if !validID(id) {
		return store.ErrNotFound
	}
	var now time.Time
	err := s.batchTx(ctx, func(b *pgx.Batch) {
		now = s.now()
		queueDecide(b, id, from, d, now)
	}, func(br pgx.BatchResults) error {
		return readDecide(br, id, d, now)
	})
	if errors.Is(err, errNoMatch) {
		return s.stateError(ctx, id, from)
	}
	return err
}

// queueDecide queues Decide's statements: the conditional state change
// with the decision, the file index and the deliveries.
func queueDecide(b *pgx.Batch, id string, from []store.State, d store.Decided, now time.Time) {
	q := `UPDATE messages SET state = $1, state_at = $2, message_id = $3, hdr_from = $4, subject = $5,
		action = $6, reasons = $7, score = $8, decision = $9, prepend = $10, hold_until = $11,
		subject_prefix = $12, strip_ar = $13 WHERE id = $14`
	args := []any{string(d.State), now, clean(d.MessageID), clean(d.From), clean(d.Subject), clean(d.Action),
		cleanAll(d.Reasons), d.Score, []byte(d.Decision), d.Prepend, tz(d.HoldUntil), clean(d.SubjectPrefix),
		d.StripAuthResults, id}
	if len(from) > 0 {
		q += ` AND state = ANY($15)`
		args = append(args, states(from))
	}
	b.Queue(q, args...)
	queueFiles(b, id, d.Files)
	queueDeliveries(b, id, d.Deliveries, now, d.LeaseOwner, d.LeaseUntil)
}

// readDecide reads the results of queueDecide's statements; errNoMatch
// means the message was in none of the from states.
func readDecide(br pgx.BatchResults, id string, d store.Decided, now time.Time) error {
	tag, err := br.Exec()
	if err != nil {
		return fmt.Errorf("store: decide %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return errNoMatch
	}
	if err := readFiles(br, id, d.Files); err != nil {
		return err
	}
	return readDeliveries(br, id, d.Deliveries, now)
}

// queueFiles replaces the attachment index of a message: two statements
// however many files (unnest keeps their order, which Get returns).
func queueFiles(b *pgx.Batch, id string, files []store.FileRef) {
	b.Queue(`DELETE FROM files WHERE msg_id = $1`, id)
	if len(files) == 0 {
		return
	}
	sums, paths, names, types := make([]string, len(files)), make([]string, len(files)), make([]string, len(files)), make([]string, len(files))
	sizes := make([]int64, len(files))
	for i, f := range files {
		sums[i], paths[i], names[i], types[i] = strings.ToLower(clean(f.SHA256)), clean(f.Path), clean(f.Name), clean(f.Type)
		sizes[i] = f.Size
	}
	b.Queue(`INSERT INTO files (msg_id, sha256, path, name, type, size)
		SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])`,
		id, sums, paths, names, types, sizes)
}

func readFiles(br pgx.BatchResults, id string, files []store.FileRef) error {
	n := 1
	if len(files) > 0 {
		n = 2
	}
	for range n {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("store: files %s: %w", id, err)
		}
	}
	return nil
}

// Transition implements store.Store.
func (s *DB) Transition(ctx context.Context, id string, from []store.State, to store.State, dels []store.Delivery, audit *store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		now := s.now()
		if err := setState(ctx, tx, id, from, to, now); err != nil {
			return err
		}
		if audit != nil {
			if err := insertAudit(ctx, tx, *audit, now); err != nil {
				return err
			}
		}
		if to == store.Quarantined || to == store.Deleted || to == store.Held || to == store.Rejected {
			if err := cancelDeliveries(ctx, tx, id, now); err != nil {
				return err
			}
		}
		return insertDeliveries(ctx, tx, id, dels, now, "", time.Time{})
	})
}

// cancelDeliveries ends the pending deliveries of a message that leaves
// the queue. A worker holding one finds it finished when it settles, and
// its result is ignored.
func cancelDeliveries(ctx context.Context, tx pgx.Tx, id string, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE deliveries SET done_at = $1, last_error = 'cancelled: message left the queue',
		lease_until = NULL WHERE msg_id = $2 AND done_at IS NULL`, now, id)
	if err != nil {
		return fmt.Errorf("store: cancel deliveries of %s: %w", id, err)
	}
	return nil
}

// queueDeliveries creates deliveries, already leased to owner until
// until when owner is set; readDeliveries writes their IDs back into dels.
func queueDeliveries(b *pgx.Batch, id string, dels []store.Delivery, now time.Time, owner string, until time.Time) {
	var lease any
	if owner != "" {
		lease = until
	}
	for _, d := range dels {
		next := d.NextAt
		if next.IsZero() {
			next = now
		}
		b.Queue(`INSERT INTO deliveries (msg_id, route, mail_from, rcpts, next_at, created_at, extra,
			lease_owner, lease_until) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id`,
			id, clean(d.Route), clean(d.MailFrom), cleanAll(d.Rcpts), next, now, d.Extra, clean(owner), lease)
	}
}

func readDeliveries(br pgx.BatchResults, id string, dels []store.Delivery, now time.Time) error {
	for i := range dels {
		if err := br.QueryRow().Scan(&dels[i].ID); err != nil {
			return fmt.Errorf("store: queue %s: %w", id, err)
		}
		if dels[i].NextAt.IsZero() {
			dels[i].NextAt = now
		}
		dels[i].MsgID, dels[i].Created = id, now
	}
	return nil
}

// insertDeliveries is queueDeliveries and readDeliveries inside tx.
func insertDeliveries(ctx context.Context, tx pgx.Tx, id string, dels []store.Delivery, now time.Time, owner string, until time.Time) error {
	if len(dels) == 0 {
		return nil
	}
	var b pgx.Batch
	queueDeliveries(&b, id, dels, now, owner, until)
	br := tx.SendBatch(ctx, &b)
	err := readDeliveries(br, id, dels, now)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// filterSQL turns a Filter into WHERE conditions with their arguments,
// numbered from $1. Substring filters are case-insensitive and literal
// (strpos, not LIKE: % and _ in an address are not wildcards).
func filterSQL(f store.Filter) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.States) > 0 {
		where = append(where, `state = ANY(`+arg(states(f.States))+`)`)
	}
	if !f.Since.IsZero() {
		where = append(where, `received_at >= `+arg(f.Since))
	}
	if f.Reason != "" {
		where = append(where, arg(clean(f.Reason))+` = ANY(reasons)`)
	}
	if f.From != "" {
		p := arg(clean(f.From))
		where = append(where, `(strpos(lower(mail_from), lower(`+p+`)) > 0 OR strpos(lower(hdr_from), lower(`+p+`)) > 0)`)
	}
	if f.Rcpt != "" {
		where = append(where, `EXISTS (SELECT 1 FROM unnest(rcpts) r WHERE strpos(lower(r), lower(`+arg(clean(f.Rcpt))+`)) > 0)`)
	}
	if f.SHA256 != "" {
		where = append(where, `id IN (SELECT msg_id FROM files WHERE sha256 = `+arg(strings.ToLower(clean(f.SHA256)))+`)`)
	}
	if len(f.IDs) > 0 {
		where = append(where, `id = ANY(`+arg(cleanAll(f.IDs))+`)`)
	}
	q := ``
	if len(where) > 0 {
		q = ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY received_at DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ` + arg(f.Limit)
	}
	return q, args
}

// List implements store.Store.
func (s *DB) List(ctx context.Context, f store.Filter) ([]*store.Message, error) {
	q, args := filterSQL(f)
	rows, err := s.pool.Query(ctx, `SELECT `+msgCols+` FROM messages`+q, args...)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	return out, nil
}

// MessageIDs implements store.Store: what List selects, IDs only.
func (s *DB) MessageIDs(ctx context.Context, f store.Filter) ([]string, error) {
	q, args := filterSQL(f)
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages`+q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: message ids: %w", err)
	}
	return ids, nil
}

// InState implements store.Store.
func (s *DB) InState(ctx context.Context, st ...store.State) ([]string, error) {
	ids, err := s.queryIDs(ctx, `SELECT id FROM messages WHERE state = ANY($1) ORDER BY received_at, id`, states(st))
	if err != nil {
		return nil, fmt.Errorf("store: in state: %w", err)
	}
	return ids, nil
}

// queryIDs runs a query whose rows are one string each.
func (s *DB) queryIDs(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, _ := s.pool.Query(ctx, q, args...)
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// AddAudit implements store.Store.
func (s *DB) AddAudit(ctx context.Context, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error { return insertAudit(ctx, tx, a, s.now()) })
}

func insertAudit(ctx context.Context, tx pgx.Tx, a store.Audit, now time.Time) error {
	if a.At.IsZero() {
		a.At = now
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit (msg_id, at, actor, action, note, detail) VALUES ($1,$2,$3,$4,$5,$6)`,
		clean(a.MsgID), a.At, clean(a.Actor), clean(a.Action), clean(a.Note), clean(a.Detail))
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", a.MsgID, err)
	}
	return nil
}

// Audits implements store.Store.
func (s *DB) Audits(ctx context.Context, id string) ([]store.Audit, error) {
	rows, _ := s.pool.Query(ctx, `SELECT msg_id, at, actor, action, note, detail FROM audit
		WHERE msg_id = $1 ORDER BY at, id`, clean(id))
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Audit, error) {
		var a store.Audit
		var at *time.Time
		err := r.Scan(&a.MsgID, &at, &a.Actor, &a.Action, &a.Note, &a.Detail)
		a.At = utc(at)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: audits %s: %w", id, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// RemoveContent implements store.Store. The bytes go in the same
// statement that checks the state, and the row remembers it, so that
// retention does not count them again.
func (s *DB) RemoveContent(ctx context.Context, id string) error {
	if !validID(id) {
		return store.ErrNotFound
	}
	var st string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT state FROM messages WHERE id = $1 FOR NO KEY UPDATE`, id).Scan(&st)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil || st != string(store.Deleted) {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM spool WHERE msg_id = $1`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE messages SET content_purged = true WHERE id = $1`, id)
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return err
		}
		return fmt.Errorf("store: remove content of %s: %w", id, err)
	}
	if st != string(store.Deleted) {
		return fmt.Errorf("store: %s is %s; only deleted messages lose their content", id, st)
	}
	return nil
}
