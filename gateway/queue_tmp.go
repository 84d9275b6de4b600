package gateway

// TEMPORARY (never merged): stands in until smtp's delivery queue lands.

import (
	"context"

	"github.com/mailguard/mailguard/policy"
)

type queueT struct{}

func (g *Gateway) newQueue(p *policy.Policy) *queueT       { return &queueT{} }
func (g *Gateway) runQueue(ctx context.Context, q *queueT) { <-ctx.Done() }
