package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/store"
)

// ErrNotReviewable means a message is neither held nor quarantined, so it
// cannot be unlocked and decided again.
var ErrNotReviewable = errors.New("gateway: message is not held or quarantined")

// Redecide inspects a held or quarantined message again with passwords an
// operator supplied (`mailguard quarantine unlock`), decides it again and
// applies the decision: a message that now passes is queued for delivery
// (a running serve delivers it), one still suspicious stays held or
// quarantined with the new findings. The operator's passwords are tried
// like the administrator's list (password_source "policy") and are never
// stored. The action is audited as "unlock".
func (g *Gateway) Redecide(ctx context.Context, id string, passwords []string, actor, note string) (*store.Message, error) {
	if g.st == nil {
		return nil, errors.New("gateway: redecide needs a store")
	}
	m, err := g.st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.State != store.Held && m.State != store.Quarantined {
		return nil, fmt.Errorf("%w (it is %s)", ErrNotReviewable, m.State)
	}
	opt := InspectOptions{}
	for _, p := range passwords {
		if p != "" {
			opt.Passwords = append(opt.Passwords, attach.Password{Value: p, Source: attach.SourcePolicy})
		}
	}
	if m.State == store.Held {
		opt.HoldUntil = m.HoldUntil
	}
	rep, err := g.inspectStored(ctx, m, opt, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", id, err)
	}
	defer rep.Close()
	if rep.Action == policy.Reject || rep.Action == policy.Tempfail {
		// The sender left long ago: nobody can be told; keep the evidence.
		rep.Action = policy.Quarantine
	}
	decrypted := 0
	for _, f := range rep.Files {
		if f.Decrypted {
			decrypted++
		}
	}
	if err := g.apply(ctx, m, rep, nil, g.decideStored(ctx, m.ID, m.State)); err != nil {
		return nil, err
	}
	after, err := g.st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if after.State == m.State && after.StateAt.Equal(m.StateAt) {
		return nil, fmt.Errorf("%w: %s moved on while it was inspected", store.ErrState, id)
	}
	detail := fmt.Sprintf("re-inspected with %d operator password(s): %d file(s) decrypted, %s → %s (%s)",
		len(opt.Passwords), decrypted, m.State, after.State, rep.Action)
	if err := g.st.AddAudit(ctx, store.Audit{MsgID: id, At: g.now(), Actor: actor, Action: "unlock", Note: note, Detail: detail}); err != nil {
		return after, err
	}
	return after, nil
}
