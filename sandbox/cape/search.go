package cape

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailguard/mailguard/sandbox"
)

// FileExists reports whether CAPE knows the sample (files/view/sha256/<h>/,
// cape-api.md §8.1). It carries no verdict.
func (c *Client) FileExists(ctx context.Context, sha256 string) (bool, error) {
	const op = "search"
	resp, err := c.get(ctx, op, "files/view/sha256/"+sha256+"/")
	if err != nil {
		return false, err
	}
	env, ok, err := decodeEnvelope(op, resp)
	if sandbox.KindOf(err) == sandbox.KindNotFound {
		// Multitenancy on: 404 {"error": true, "error_value": "Sample not found"}.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !ok {
		if strings.Contains(strings.ToLower(env.message()), "not found") {
			return false, nil
		}
		return false, logicalError(op, env)
	}
	return true, nil
}

// SearchTasks lists the tasks of a sample (tasks/search/sha256/<h>/,
// cape-api.md §8.2): for a demuxed archive, the tasks of its members.
func (c *Client) SearchTasks(ctx context.Context, sha256 string) ([]View, error) {
	const op = "search"
	resp, err := c.get(ctx, op, "tasks/search/sha256/"+sha256+"/")
	if err != nil {
		return nil, err
	}
	env, ok, err := decodeEnvelope(op, resp)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, logicalError(op, env)
	}
	var raw []json.RawMessage
	if len(env.Data) > 0 && json.Unmarshal(env.Data, &raw) != nil {
		return nil, &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "data is not a list"}
	}
	views := make([]View, 0, len(raw))
	for _, r := range raw {
		var v View
		if json.Unmarshal(r, &v) == nil && v.ID > 0 {
			views = append(views, v)
		}
	}
	return views, nil
}

// SearchSHA256 implements sandbox.Searcher with the dedup algorithm of
// cape-api.md §8.2: files/view first (one cheap request for content CAPE
// has never seen), then tasks/search; per analysed sample (the content, or
// each member of an archive) the newest compatible task that is reported,
// else the newest one still running. Compatible means the same password and
// archive member options, and added within SearchMaxAge. When some member
// has only failed tasks the search finds nothing and the file is submitted.
func (c *Client) SearchSHA256(ctx context.Context, sha256 string, opts map[string]string) (sandbox.TaskID, bool, error) {
	if !sandbox.ValidSHA256(sha256) {
		return "", false, &sandbox.Error{Op: "search", Kind: sandbox.KindInternal, Msg: "bad sha256"}
	}
	exists, err := c.FileExists(ctx, sha256)
	if err != nil || !exists {
		return "", false, err
	}
	views, err := c.SearchTasks(ctx, sha256)
	if err != nil {
		return "", false, err
	}
	id, ok := pickTasks(views, opts, c.now().Add(-c.cfg.SearchMaxAge))
	return id, ok, nil
}

// pickTasks chooses one task per analysed sample (see SearchSHA256).
func pickTasks(views []View, opts map[string]string, notBefore time.Time) (sandbox.TaskID, bool) {
	type choice struct{ reported, running int }
	best := map[string]*choice{}
	var order []string
	for _, v := range views {
		key := strings.ToLower(v.Sample.SHA256)
		ch := best[key]
		if ch == nil {
			ch = &choice{}
			best[key] = ch
			order = append(order, key)
		}
		if !compatible(v.Options, opts) || !recent(v.AddedOn, notBefore) {
			continue
		}
		switch {
		case v.Status == StatusReported:
			ch.reported = max(ch.reported, v.ID)
		case Failed(v.Status):
		default:
			ch.running = max(ch.running, v.ID)
		}
	}
	var ids []int
	for _, key := range order {
		ch := best[key]
		switch {
		case ch.reported > 0:
			ids = append(ids, ch.reported)
		case ch.running > 0:
			ids = append(ids, ch.running)
		default:
			return "", false
		}
	}
	if len(ids) == 0 {
		return "", false
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return sandbox.TaskID(strings.Join(parts, ",")), true
}

// compatible reports whether a task run with CAPE options string taskOpts
// says something about content analysed with opts: the same password and
// archive member (a ZIP analysed without its password says nothing).
func compatible(taskOpts string, opts map[string]string) bool {
	have := parseOptions(taskOpts)
	for _, k := range []string{sandbox.OptionPassword, sandbox.OptionFile} {
		if have[k] != opts[k] {
			return false
		}
	}
	return true
}

// parseOptions is CAPE's get_options: split on ",", then on the first "=",
// strip whitespace.
func parseOptions(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// recent reports whether a task added at added ("%Y-%m-%d %H:%M:%S", UTC)
// is not before notBefore. An unreadable date counts as recent.
func recent(added string, notBefore time.Time) bool {
	t, err := time.Parse("2006-01-02 15:04:05", added)
	return err != nil || !t.Before(notBefore)
}

// Health is the part of cuckoo/status/ (cape-api.md §9) worth watching.
type Health struct {
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	Machines struct {
		Total     int `json:"total"`
		Available int `json:"available"`
	} `json:"machines"`
	Tasks struct {
		Total     int `json:"total"`
		Pending   int `json:"pending"`
		Running   int `json:"running"`
		Completed int `json:"completed"`
		Reported  int `json:"reported"`
	} `json:"tasks"`
}

// Health returns cuckoo/status/.
func (c *Client) Health(ctx context.Context) (Health, error) {
	const op = "health"
	var h Health
	resp, err := c.get(ctx, op, "cuckoo/status/")
	if err != nil {
		return h, err
	}
	env, ok, err := decodeEnvelope(op, resp)
	if err != nil {
		return h, err
	}
	if !ok {
		return h, logicalError(op, env)
	}
	if err := json.Unmarshal(env.Data, &h); err != nil {
		return h, &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "data", Err: err}
	}
	return h, nil
}
