package cape

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailguard/mailguard/sandbox"
)

// Task statuses (cape-api.md §6.3).
const (
	StatusPending              = "pending"
	StatusRunning              = "running"
	StatusCompleted            = "completed"
	StatusReported             = "reported"
	StatusFailedAnalysis       = "failed_analysis"
	StatusFailedProcessing     = "failed_processing"
	StatusFailedReporting      = "failed_reporting"
	StatusBanned               = "banned"
	StatusRecovered            = "recovered"
	StatusDistributed          = "distributed"
	StatusDistributedCompleted = "distributed_completed"
)

// Failed reports whether status is terminal without a report.
func Failed(status string) bool {
	return strings.HasPrefix(status, "failed_") || status == StatusBanned
}

// parseTaskID splits a sandbox.TaskID into CAPE task ids.
func parseTaskID(id sandbox.TaskID) ([]int, error) {
	parts := strings.Split(string(id), ",")
	ids := make([]int, 0, len(parts))
	for _, p := range parts {
		n, ok := parseID(p)
		if !ok {
			// A task id we cannot have issued: treat the task as gone.
			return nil, &sandbox.Error{Op: "status", Kind: sandbox.KindNotFound, Msg: "bad task id " + strconv.Quote(string(id))}
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// TaskStatus returns the status of one task (tasks/status/<id>/).
func (c *Client) TaskStatus(ctx context.Context, id int) (string, error) {
	const op = "status"
	resp, err := c.get(ctx, op, fmt.Sprintf("tasks/status/%d/", id))
	if err != nil {
		return "", err
	}
	env, ok, err := decodeEnvelope(op, resp)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", logicalError(op, env)
	}
	var st string
	if err := json.Unmarshal(env.Data, &st); err != nil || st == "" {
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "data is not a status string: " + truncate(string(env.Data), 80)}
	}
	return st, nil
}

// View is the part of tasks/view/<id>/ the client uses.
type View struct {
	ID      int    `json:"id"`
	Status  string `json:"status"`
	Options string `json:"options"`
	Custom  string `json:"custom"`
	AddedOn string `json:"added_on"`
	Sample  struct {
		SHA256 string `json:"sha256"`
	} `json:"sample"`
}

// TaskView returns tasks/view/<id>/, which follows a recovered task to the
// task that replaced it.
func (c *Client) TaskView(ctx context.Context, id int) (View, error) {
	const op = "view"
	var v View
	resp, err := c.get(ctx, op, fmt.Sprintf("tasks/view/%d/", id))
	if err != nil {
		return v, err
	}
	env, ok, err := decodeEnvelope(op, resp)
	if err != nil {
		return v, err
	}
	if !ok {
		return v, logicalError(op, env)
	}
	if err := json.Unmarshal(env.Data, &v); err != nil || v.ID <= 0 {
		return v, &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "data is not a task", Err: err}
	}
	return v, nil
}

// Status polls every task of id and, once all are reported, fetches their
// reports and returns the verdict (the maximum over the tasks of an unpacked
// archive). Before that it returns sandbox.ErrPending wrapped with the status
// seen; a failed task is a KindTaskFailed error.
func (c *Client) Status(ctx context.Context, id sandbox.TaskID) (sandbox.Verdict, error) {
	ids, err := parseTaskID(id)
	if err != nil {
		return sandbox.Verdict{}, err
	}
	ready := make([]int, 0, len(ids))
	for _, n := range ids {
		st, err := c.TaskStatus(ctx, n)
		if err != nil {
			return sandbox.Verdict{}, err
		}
		if st == StatusRecovered {
			// The task was re-queued after a crash; tasks/view follows
			// custom = "Recovery_<N>" to the new task.
			v, err := c.TaskView(ctx, n)
			if err != nil {
				return sandbox.Verdict{}, err
			}
			n, st = v.ID, v.Status
		}
		switch {
		case st == StatusReported:
			ready = append(ready, n)
		case Failed(st):
			return sandbox.Verdict{}, &sandbox.Error{Op: "status", Kind: sandbox.KindTaskFailed,
				Msg: fmt.Sprintf("task %d ended %s", n, st)}
		default:
			// pending, running, completed, distributed, recovered again, or
			// a status this client does not know: not done yet.
			return sandbox.Verdict{}, fmt.Errorf("%w: task %d is %s", sandbox.ErrPending, n, st)
		}
	}
	reports := make([]*Report, 0, len(ready))
	for _, n := range ready {
		r, err := c.Report(ctx, n)
		if err != nil {
			return sandbox.Verdict{}, err
		}
		reports = append(reports, r)
	}
	v := VerdictOf(reports)
	v.TaskID = id
	v.At = c.now()
	return v, nil
}

// Malstatus values (cape-api.md §7.2).
const (
	MalstatusMalicious  = "Malicious"
	MalstatusSuspicious = "Suspicious"
	MalstatusClean      = "Clean"
	MalstatusUndetected = "Undetected"
	MalstatusFailed     = "Failed"
)

// Caps on what a verdict keeps, so a hostile report cannot bloat the store.
const (
	maxVerdictSignatures = 100
	maxVerdictDetections = 32
)

// VerdictOf combines the reports of one submission: the highest malscore
// (and its malstatus), every signature and family once. When a sample never
// ran (malstatus "Failed") the verdict is StateError, scores kept: a clean
// score from a sample that did not run says nothing.
func VerdictOf(reports []*Report) sandbox.Verdict {
	v := sandbox.Verdict{State: sandbox.StateDone, Signatures: []string{}, Detections: []string{}}
	seenSig, seenFam := map[string]bool{}, map[string]bool{}
	for i, r := range reports {
		if i == 0 || r.Malscore > v.Malscore {
			v.Malscore, v.Malstatus = r.Malscore, r.Malstatus
		}
		if v.SHA256 == "" {
			v.SHA256 = r.SHA256
		}
		if r.Malstatus == MalstatusFailed {
			v.State = sandbox.StateError
			v.Error = fmt.Sprintf("task %d: the sample did not run (malstatus Failed)", r.TaskID)
		}
		for _, s := range r.Signatures {
			if !seenSig[s.Name] && len(v.Signatures) < maxVerdictSignatures {
				seenSig[s.Name] = true
				v.Signatures = append(v.Signatures, s.Name)
			}
		}
		for _, d := range r.Detections {
			if !seenFam[d.Family] && len(v.Detections) < maxVerdictDetections {
				seenFam[d.Family] = true
				v.Detections = append(v.Detections, d.Family)
			}
		}
	}
	if len(reports) > 1 {
		v.SHA256 = "" // the reports are about the archive's members
	}
	if len(v.Detections) > 0 {
		v.Family = v.Detections[0]
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
