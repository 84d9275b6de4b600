package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailguard/mailguard/store"
)

// MessageIDs implements store.Store. It selects exactly what List selects
// (TestMessageIDsAgreeWithList holds the two together) but reads only the
// IDs, so that a hunt over months of mail does not load every decision.
func (s *DB) MessageIDs(ctx context.Context, f store.Filter) ([]string, error) {
	where, args := filterSQL(f)
	q := `SELECT id FROM messages`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY received_at DESC, id DESC` + limitClause(f.Limit)
	ids, err := s.queryIDs(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: message ids: %w", err)
	}
	return ids, nil
}

// filterSQL turns a Filter into WHERE conditions with their arguments.
//
// TODO(store): List builds the same conditions inline; it could use this.
func filterSQL(f store.Filter) ([]string, []any) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, `state IN (`+placeholders(len(f.States))+`)`)
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
	return where, args
}
