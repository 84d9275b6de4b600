package smtp

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestMetricsCount(t *testing.T) {
	relayDenied := metricRejections.WithLabelValues("rcpt", "5xx", "relay_denied")
	bare := metricRejections.WithLabelValues("data", "5xx", "bare_newline")
	accepted := metricMessages.WithLabelValues(string(Inbound))
	before := []float64{counterValue(t, relayDenied), counterValue(t, bare), counterValue(t, accepted)}

	_, addrs := startServer(t, testConfig(), &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 550)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("bare\nlf\r\n.\r\n")
	c.expect(550)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("fine\r\n.\r\n")
	c.expect(250)

	after := []float64{counterValue(t, relayDenied), counterValue(t, bare), counterValue(t, accepted)}
	for i, name := range []string{"relay_denied", "bare_newline", "accepted"} {
		if after[i]-before[i] != 1 {
			t.Errorf("%s: %v -> %v, want +1", name, before[i], after[i])
		}
	}
}
