package cape

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"github.com/mailguard/mailguard/sandbox"
)

// formFields are tasks/create/file/ fields that a File option sets directly
// (cape-api.md §5.1). Every other option goes into the "options" string.
var formFields = map[string]bool{
	"package": true, "timeout": true, "priority": true, "machine": true, "platform": true,
	"tags": true, "custom": true, "memory": true, "clock": true, "enforce_timeout": true,
	"route": true, "tlp": true, "tags_tasks": true, "cape": true,
}

// Submit uploads f to tasks/create/file/ and returns its task id, or the
// comma-joined ids when CAPE unpacked an archive into several tasks.
func (c *Client) Submit(ctx context.Context, f sandbox.File) (sandbox.TaskID, error) {
	const op = "submit"
	switch {
	case f.Open == nil:
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindInternal, Msg: "file has no Open"}
	case !sandbox.ValidSHA256(f.SHA256):
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindInternal, Msg: "bad sha256 " + strconv.Quote(f.SHA256)}
	case f.Size <= 0:
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindRejected, Msg: "empty file"}
	case f.Size > c.cfg.MaxSampleSize:
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindRejected,
			Msg: fmt.Sprintf("file of %d bytes exceeds the sandbox limit of %d", f.Size, c.cfg.MaxSampleSize)}
	}
	fields, err := c.formFor(f)
	if err != nil {
		return "", err
	}
	content, err := f.Open()
	if err != nil {
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindInternal, Temporary: !errors.Is(err, fs.ErrNotExist),
			Msg: "opening the content", Err: err}
	}
	defer content.Close()

	ctx, cancel := context.WithTimeout(ctx, c.cfg.UploadTimeout)
	defer cancel()
	body, length, check := multipartBody(fields, UploadName(f.Name, f.SHA256), content, f.Size, f.SHA256)
	req, err := c.request(ctx, http.MethodPost, "tasks/create/file/", body)
	if err != nil {
		return "", err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	var resp *response
	err = c.roundTrip(ctx, op, req, func(r *http.Response) error {
		b, err := readLimited(r.Body, maxBody)
		if err != nil {
			return classifyReadErr(op, err)
		}
		resp = &response{status: r.StatusCode, header: r.Header, body: b}
		return nil
	})
	if check.err != nil {
		// The content did not match its size or hash: nothing was analysed.
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindInternal, Msg: "content does not match the file", Err: check.err}
	}
	if err != nil {
		return "", err
	}
	return parseSubmit(op, resp)
}

// formFor builds the form fields: the client's defaults, then f.Options.
func (c *Client) formFor(f sandbox.File) (map[string]string, error) {
	d := c.cfg.Defaults
	fields := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			fields[k] = v
		}
	}
	set("package", d.Package)
	set("machine", d.Machine)
	set("platform", d.Platform)
	set("tags", d.Tags)
	set("route", d.Route)
	if d.Timeout > 0 {
		fields["timeout"] = strconv.Itoa(d.Timeout)
	}
	if d.Priority > 0 {
		fields["priority"] = strconv.Itoa(d.Priority)
	}
	opts := map[string]string{}
	for k, v := range d.Options {
		opts[k] = v
	}
	for k, v := range f.Options {
		if formFields[k] {
			set(k, v)
		} else {
			opts[k] = v
		}
	}
	s, err := OptionsString(opts)
	if err != nil {
		return nil, &sandbox.Error{Op: "submit", Kind: sandbox.KindRejected, Msg: err.Error()}
	}
	set("options", s)
	return fields, nil
}

// OptionsString joins options into CAPE's "k1=v1,k2=v2" (sorted by key,
// empty values left out). CAPE splits on "," and strips whitespace
// (get_options), so a value with a comma, surrounding whitespace or a control
// character cannot be carried: for such a password, decrypt locally instead
// (cape-api.md §5.3).
func OptionsString(opts map[string]string) (string, error) {
	keys := make([]string, 0, len(opts))
	for k, v := range opts {
		if v != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := opts[k]
		if !validOptionKey(k) {
			return "", fmt.Errorf("option key %q cannot be sent to CAPE", k)
		}
		if strings.ContainsAny(v, ",") || strings.TrimSpace(v) != v || strings.ContainsFunc(v, isControl) {
			return "", fmt.Errorf("option %s: CAPE's options string cannot carry this value (comma, surrounding space or control character)", k)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ","), nil
}

func validOptionKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// UploadName makes the name CAPE stores: CAPE turns every character other
// than an ASCII letter, digit, space, "_", "-" or "." into "_"
// (sanitize_filename), which would reduce a Japanese name to underscores and
// hide the type. The extension is kept; a stem with nothing left is replaced
// by the start of the hash.
func UploadName(name, sha256Hex string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	stem, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 11 {
		stem, ext = name[:i], sanitize(name[i:])
		if strings.Contains(ext, "_") {
			stem, ext = name, ""
		}
	}
	stem = strings.Trim(sanitize(stem), "_ .")
	if len(stem) > 100 {
		stem = stem[:100]
	}
	if !strings.ContainsFunc(stem, func(r rune) bool { return r != '_' && r != ' ' && r != '-' && r != '.' }) {
		stem = sha256Hex[:min(16, len(sha256Hex))]
	}
	return stem + strings.ToLower(ext)
}

func sanitize(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '_' || c == '-' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// boundary is fixed so that the body length is known before streaming; it
// cannot occur in the form fields, which are short text.
const boundary = "mailguard-sandbox-upload-9f3b1c7e5d2a4068"

// checkReader passes the content through and fails the upload, before the
// closing boundary is sent, if it is not exactly size bytes with the
// expected SHA-256.
type checkReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	size int64
	want string
	err  error
}

func (c *checkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	switch {
	case c.n > c.size:
		c.err = fmt.Errorf("content longer than %d bytes", c.size)
	case err == io.EOF && c.n < c.size:
		c.err = fmt.Errorf("content of %d bytes, want %d", c.n, c.size)
	case err == io.EOF && hex.EncodeToString(c.h.Sum(nil)) != c.want:
		c.err = errors.New("content sha256 differs")
	case err != nil && err != io.EOF:
		c.err = err
	}
	if c.err != nil {
		return n, c.err
	}
	return n, err
}

// multipartBody streams the form: fields, the file part, the content, the
// closing boundary. The length is exact, so CAPE (behind WSGI, which does
// not like chunked uploads) gets a Content-Length.
func multipartBody(fields map[string]string, name string, content io.Reader, size int64, sha string) (io.Reader, int64, *checkReader) {
	var pre bytes.Buffer
	mw := multipart.NewWriter(&pre)
	mw.SetBoundary(boundary)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		mw.WriteField(k, fields[k])
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", "application/octet-stream")
	mw.CreatePart(h)
	trailer := "\r\n--" + boundary + "--\r\n"
	check := &checkReader{r: content, h: sha256.New(), size: size, want: sha}
	length := int64(pre.Len()) + size + int64(len(trailer))
	return io.MultiReader(&pre, check, strings.NewReader(trailer)), length, check
}

// parseSubmit reads the tasks/create/file/ answer (cape-api.md §5.2).
func parseSubmit(op string, r *response) (sandbox.TaskID, error) {
	env, ok, err := decodeEnvelope(op, r)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", logicalError(op, env)
	}
	var data struct {
		TaskIDs []json.RawMessage `json:"task_ids"`
	}
	if len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, &data); err != nil {
			return "", &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "data.task_ids", Err: err}
		}
	}
	ids := make([]string, 0, len(data.TaskIDs))
	for _, raw := range data.TaskIDs {
		id, ok := parseID(jsonText(raw))
		if !ok {
			return "", &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "bad task id " + string(raw)}
		}
		ids = append(ids, strconv.Itoa(id))
	}
	if len(ids) == 0 {
		if len(env.items()) > 0 {
			return "", logicalError(op, env)
		}
		return "", &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "no task_ids in the answer"}
	}
	return sandbox.TaskID(strings.Join(ids, ",")), nil
}

// parseID parses a positive decimal task id.
func parseID(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0 && strconv.Itoa(n) == s
}
