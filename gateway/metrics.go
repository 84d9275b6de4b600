package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricDecisions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_decisions_total",
		Help: "Inspection decisions, by action.",
	}, []string{"action"}) // deliver, tag, hold, quarantine, reject, tempfail

	metricReasons = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_reasons_total",
		Help: "Reason tags in decisions.",
	}, []string{"reason"}) // the bounded reason vocabulary (custom rule tags included)

	metricStage = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mailguard_gateway_stage_seconds",
		Help:    "Time spent per inspection stage.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	}, []string{"stage"}) // auth, attach, yara, sandbox, thread, reputation, policy, total

	metricInspectErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_gateway_inspect_errors_total",
		Help: "Inspections that failed inside mailguard (the policy's on_error applied).",
	})

	metricPanics = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_panics_total",
		Help: "Recovered panics, by package.",
	}, []string{"pkg"})

	metricHeld = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "mailguard_gateway_held_messages",
		Help: "Messages currently held (sandbox or password wait).",
	})

	metricHoldSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "mailguard_gateway_hold_seconds",
		Help:    "Time messages spent held before a final decision.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14),
	})

	metricReputation = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_reputation_checks_total",
		Help: "Client reputation checks at connect or RCPT time, by result.",
	}, []string{"kind", "result"}) // kind: ip; result: clean, listed, reject

	metricResumed = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_resumed_total",
		Help: "Messages found in flight at start, by state.",
	}, []string{"state"})

	metricRetentionRemoved = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_retention_removed_total",
		Help: "What retention removed, by kind: deleted (quarantined messages), content (spool bytes of a message), records, blobs (sandbox files), verdicts.",
	}, []string{"kind"})

	metricRetentionBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_gateway_retention_freed_bytes_total",
		Help: "File bytes retention freed.",
	})

	metricRetentionRuns = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_retention_runs_total",
		Help: "Retention runs of serve and mailguard purge (not dry runs), by result.",
	}, []string{"result"}) // ok, error

	metricRetentionLast = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "mailguard_gateway_retention_last_success_timestamp_seconds",
		Help: "When a retention run last finished without error (Unix time; 0 before the first).",
	})

	metricSpoolErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_gateway_recovery_total",
		Help: "Recovery findings at start: orphan spool files and rows without spool.",
	}, []string{"kind"}) // orphan, missing_spool
)
