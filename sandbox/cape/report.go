package cape

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/mailguard/mailguard/sandbox"
)

// Report is what the client reads from report.json (cape-api.md §7.2); the
// rest of the (often very large) report is skipped while streaming.
type Report struct {
	TaskID      int         // info.id
	Malscore    float64     // clamped to [0, 10]
	HasMalscore bool        // the report carried a numeric malscore
	Malstatus   string      // "" when null
	Signatures  []Signature // in report order (severity ascending)
	Detections  []Detection
	SHA256      string // target.file.sha256
	Timeout     bool   // info.timeout: the analysis hit its timeout
}

// Signature is one matched signature, without its data.
type Signature struct {
	Name        string
	Description string
	Severity    int
	Weight      int
	Confidence  int
	Categories  []string
	Families    []string
}

// Detection is a family detection: {"family", "details": [{by: on}]}.
type Detection struct {
	Family     string
	DetectedBy []string // "Yara", "ClamAV", "Behavior", "Suricata", ...
}

// Limits on what is kept from one report; the rest is skipped.
const (
	maxSignatures = 1000
	maxDetections = 100
	maxListItems  = 32
	maxText       = 512
)

// Report fetches and parses tasks/get/report/<id>/json/. A task that is not
// reported yet yields sandbox.ErrPending (wrapped).
func (c *Client) Report(ctx context.Context, id int) (*Report, error) {
	const op = "report"
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := c.request(ctx, http.MethodGet, fmt.Sprintf("tasks/get/report/%d/json/", id), nil)
	if err != nil {
		return nil, err
	}
	var rep *Report
	err = c.roundTrip(ctx, op, req, func(r *http.Response) error {
		if r.StatusCode != http.StatusOK {
			b, _ := readLimited(r.Body, 1<<16)
			return statusError(op, &response{status: r.StatusCode, header: r.Header, body: b})
		}
		var err error
		rep, err = ParseReport(&limitedReader{r: r.Body, n: c.cfg.MaxReportBytes})
		return err
	})
	if err != nil {
		var env *EnvelopeError
		if errors.As(err, &env) {
			if strings.Contains(strings.ToLower(env.Message), "still being analyzed") {
				return nil, fmt.Errorf("%w: task %d report: %s", sandbox.ErrPending, id, env.Message)
			}
			return nil, logicalError(op, &envelope{ErrorValue: mustJSON(env.Message)})
		}
		return nil, asReportError(op, err)
	}
	if rep.TaskID != 0 && rep.TaskID != id {
		// tasks/get/report follows a recovered task to its replacement;
		// anything else is not our report.
		rep.TaskID = id
	}
	if !rep.HasMalscore {
		return nil, &sandbox.Error{Op: op, Kind: sandbox.KindTaskFailed,
			Msg: fmt.Sprintf("report of task %d has no malscore (signature processing off?)", id)}
	}
	return rep, nil
}

func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// asReportError classifies an error from reading or parsing a report.
func asReportError(op string, err error) error {
	var se *sandbox.Error
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, errTooLarge):
		return &sandbox.Error{Op: op, Kind: sandbox.KindTaskFailed, Msg: "report larger than the limit", Err: err}
	case errors.Is(err, errHTMLReport):
		return &sandbox.Error{Op: op, Kind: sandbox.KindAuth, Msg: "HTML page instead of the report: the API user may not download reports (web.conf reports_dl_allowed_to_all)"}
	case errors.Is(err, errSyntax):
		return &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Temporary: true, Msg: "malformed report JSON", Err: err}
	}
	return &sandbox.Error{Op: op, Kind: sandbox.KindUnavailable, Temporary: true, Msg: "reading the report", Err: err}
}

// EnvelopeError is a report answer that was CAPE's error envelope
// ({"error": true, "error_value": …}) instead of a report.
type EnvelopeError struct{ Message string }

// Error implements error.
func (e *EnvelopeError) Error() string { return "cape: " + e.Message }

var (
	errHTMLReport = errors.New("html instead of json")
	errSyntax     = errors.New("malformed json")
)

// limitedReader fails with errTooLarge after n bytes.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// At the limit: one more byte means the report is too large.
		var one [1]byte
		k, err := l.r.Read(one[:])
		if k > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// ParseReport reads report.json as a stream, keeping malscore, malstatus,
// signature summaries, detections, info.id/timeout and target.file.sha256,
// and skipping everything else without building it, so memory stays small
// on reports of hundreds of megabytes. An error envelope is an
// *EnvelopeError.
func ParseReport(r io.Reader) (*Report, error) {
	s := newScanner(r)
	if c, err := s.peek(); err == nil && c == '<' {
		return nil, errHTMLReport
	}
	rep := &Report{}
	var isErr bool
	var errValue string
	err := s.walkObject(true, func(key string) error {
		var err error
		switch key {
		case "malscore":
			var f float64
			f, rep.HasMalscore, err = s.readNumber()
			rep.Malscore = clampScore(f)
		case "malstatus":
			rep.Malstatus, err = s.readString(maxText)
		case "signatures":
			err = readSignatures(s, rep)
		case "detections":
			err = readDetections(s, rep)
		case "info":
			err = readInfo(s, rep)
		case "target":
			err = s.walkObject(false, func(k string) error {
				if k != "file" {
					return s.skip()
				}
				return s.walkObject(false, func(k string) error {
					if k != "sha256" {
						return s.skip()
					}
					v, err := s.readString(128)
					rep.SHA256 = strings.ToLower(v)
					return err
				})
			})
		case "error":
			isErr, err = s.readBool()
		case "error_value":
			errValue, err = s.readString(maxText)
		default:
			err = s.skip()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if isErr {
		return nil, &EnvelopeError{Message: errValue}
	}
	return rep, nil
}

func clampScore(f float64) float64 {
	if math.IsNaN(f) || f < 0 {
		return 0
	}
	return min(f, 10)
}

func readInfo(s *scanner, rep *Report) error {
	return s.walkObject(false, func(k string) error {
		switch k {
		case "id":
			f, ok, err := s.readNumber()
			if ok && f > 0 && f < math.MaxInt32 && f == math.Trunc(f) {
				rep.TaskID = int(f)
			}
			return err
		case "timeout":
			var err error
			rep.Timeout, err = s.readBool()
			return err
		}
		return s.skip()
	})
}

func readSignatures(s *scanner, rep *Report) error {
	return s.walkArray(func() error {
		if len(rep.Signatures) >= maxSignatures {
			return s.skip()
		}
		var sig Signature
		err := s.walkObject(false, func(k string) error {
			var err error
			switch k {
			case "name":
				sig.Name, err = s.readString(maxText)
			case "description":
				sig.Description, err = s.readString(maxText)
			case "severity":
				sig.Severity, err = s.readInt()
			case "weight":
				sig.Weight, err = s.readInt()
			case "confidence":
				sig.Confidence, err = s.readInt()
			case "categories":
				sig.Categories, err = s.readStrings()
			case "families":
				sig.Families, err = s.readStrings()
			default:
				err = s.skip()
			}
			return err
		})
		if sig.Name != "" {
			rep.Signatures = append(rep.Signatures, sig)
		}
		return err
	})
}

// readDetections reads "detections": a list of {"family", "details"}, or, in
// older CAPE versions, a plain family string (or a list of them).
func readDetections(s *scanner, rep *Report) error {
	add := func(d Detection) {
		if d.Family != "" && len(rep.Detections) < maxDetections {
			rep.Detections = append(rep.Detections, d)
		}
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == '"' {
		fam, err := s.readString(maxText)
		add(Detection{Family: fam})
		return err
	}
	return s.walkArray(func() error {
		c, err := s.peek()
		if err != nil {
			return err
		}
		var d Detection
		if c == '"' {
			d.Family, err = s.readString(maxText)
		} else {
			err = readDetection(s, &d)
		}
		add(d)
		return err
	})
}

// readDetection reads one {"family", "details": [{by: on}]} object.
func readDetection(s *scanner, d *Detection) error {
	return s.walkObject(false, func(k string) error {
		switch k {
		case "family":
			var err error
			d.Family, err = s.readString(maxText)
			return err
		case "details":
			return s.walkArray(func() error {
				return s.walkObject(false, func(by string) error {
					if len(d.DetectedBy) < maxListItems {
						d.DetectedBy = append(d.DetectedBy, clip(by))
					}
					return s.skip()
				})
			})
		}
		return s.skip()
	})
}

// clip bounds a string kept from a report.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	return strings.ToValidUTF8(s[:maxText], "")
}
