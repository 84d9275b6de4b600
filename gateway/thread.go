package gateway

import (
	"context"

	"github.com/mailguard/mailguard/store"
)

// stageThread is the conversation stage. It runs after the attachment walk
// and before YARA: it computes the conversation facts (first contact,
// thread hijack, lookalike senders, impersonation, trap recipients, PPAP
// password linking) and, when an encrypted archive stayed locked and a
// related mail offered password candidates, walks the message again with
// them (source "thread") so that YARA and the sandbox see the contents.
//
// TODO(thread): being written (issue 7); until then no conversation facts.
func (g *Gateway) stageThread(ctx context.Context, st *stages, env Envelope, opt InspectOptions, rep *Report) error {
	return nil
}

// recordMessage remembers a decided message in the conversation store (both
// directions) and acts on what that changes for other messages: a trap
// flags its sender, a password mail releases the archive held for it.
// It runs after the decision is committed; an error is logged, never
// turned into a reply.
//
// TODO(thread): being written (issue 7).
func (g *Gateway) recordMessage(ctx context.Context, m *store.Message, rep *Report, st store.State) {}
