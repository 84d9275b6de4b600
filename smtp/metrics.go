package smtp

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Inbound metrics. Labels are bounded: results, stages, code classes and
// the fixed reasons of reasonFor.
var (
	metricConnections = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_smtp_connections_total",
		Help: "Inbound connections by outcome at connect time.",
	}, []string{"result"}) // accepted, limit_total, limit_ip, proxy_error, proxy_untrusted, tls_error, refused

	metricActiveConns = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "mailguard_smtp_connections_active",
		Help: "Inbound connections currently open.",
	})

	metricRejections = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_smtp_rejections_total",
		Help: "Refusals sent by mailguard's SMTP layer, by stage, code class and reason.",
	}, []string{"stage", "class", "reason"})

	metricMessages = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_smtp_messages_accepted_total",
		Help: "Messages accepted with 250, by direction.",
	}, []string{"direction"})

	metricBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_smtp_received_bytes_total",
		Help: "Message bytes read in DATA and BDAT.",
	})

	metricDataDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "mailguard_smtp_data_duration_seconds",
		Help:    "Time from the start of DATA/BDAT to the handler's answer.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
)

// Delivery metrics.
var (
	metricDeliveryAttempts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_smtp_delivery_attempts_total",
		Help: "Delivery attempts of one message, by outcome.",
	}, []string{"result"}) // delivered, deferred, bounced, error

	metricDeliveryDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mailguard_smtp_delivery_duration_seconds",
		Help:    "Duration of one delivery attempt, by route.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"route"})

	metricRelaySessions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_smtp_relay_sessions_total",
		Help: "Sessions with a downstream relay used for a delivery: new (connected) or reused (kept open from an earlier delivery).",
	}, []string{"kind"}) // new, reused

	metricQueueRetries = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_smtp_queue_retries_total",
		Help: "Messages put back in the queue for a later attempt.",
	})

	metricDSNs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "mailguard_smtp_dsn_built_total",
		Help: "Delivery status notifications built for senders.",
	})

	metricPanics = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "mailguard_smtp_panics_total",
		Help: "Panics recovered in the SMTP layer, by place.",
	}, []string{"where"}) // worker, conn
)
