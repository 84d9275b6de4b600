package sandbox

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of the scheduler. Labels are bounded: results, states, operations
// and error kinds, never hashes or task ids.
var (
	metricSubmissions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_sandbox_submissions_total",
		Help: "Uploads to the sandbox, by result (ok, error).",
	}, []string{"result"})
	metricCacheHits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_sandbox_cache_hits_total",
		Help: "Files answered from the verdict cache without the sandbox.",
	})
	metricDeduped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_sandbox_deduped_total",
		Help: "Files joined to a task already in flight for the same content.",
	})
	metricSearchHits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_sandbox_search_hits_total",
		Help: "Files found on the sandbox by hash search and not uploaded.",
	})
	metricPolls = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_sandbox_polls_total",
		Help: "Task status polls, by result (pending, reported, failed, error).",
	}, []string{"result"})
	metricErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_sandbox_errors_total",
		Help: "Sandbox and store errors, by operation and kind.",
	}, []string{"op", "kind"})
	metricPending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "mailguard_sandbox_pending_tasks",
		Help: "Files waiting for a verdict (queued or submitted), as last counted.",
	})
	metricVerdicts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_sandbox_verdicts_total",
		Help: "Verdicts reached, by state (done, error, timeout).",
	}, []string{"state"})
	metricLatency = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mailguard_sandbox_verdict_latency_seconds",
		Help:    "Time from scheduling a file to its verdict, by state.",
		Buckets: []float64{30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600, 7200},
	}, []string{"state"})
)
