package sqlite

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The committer's metrics: how many transactions share a commit, and how
// long a commit takes (directory fsyncs, the transactions, the log fsync).
// A commit that takes long with large batches means the store is the
// bottleneck of acceptance.
var (
	metricCommitSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "mailguard_store_commit_seconds",
		Help:    "Time of one group commit of the SQLite store.",
		Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, 1},
	})
	metricCommitBatch = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "mailguard_store_commit_transactions",
		Help:    "Transactions carried by one group commit of the SQLite store.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
)
