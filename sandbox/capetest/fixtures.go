package capetest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
)

//go:embed testdata/*.json testdata/*.html
var fixtureFS embed.FS

// fixtures are the parsed JSON templates. Each answer starts from a deep copy
// of one of them, so the emulator's field names come from CAPE's documented
// shapes, not from any Go struct.
type fixtures struct {
	task, guest, sample, status map[string]any
	reports                     map[string]map[string]any // by profile
	signatures                  map[string]map[string]any // by name
	notFound, unavailable       []byte
	forbiddenReport             []byte
}

var profiles = []string{"clean", "suspicious", "malicious", "family"}

func loadFixtures() (*fixtures, error) {
	fx := &fixtures{reports: map[string]map[string]any{}}
	for _, x := range []struct {
		name string
		dst  *map[string]any
	}{{"task.json", &fx.task}, {"guest.json", &fx.guest}, {"sample.json", &fx.sample}, {"cuckoo_status.json", &fx.status}} {
		m, err := readObject(x.name)
		if err != nil {
			return nil, err
		}
		*x.dst = m
	}
	for _, p := range profiles {
		m, err := readObject("report_" + p + ".json")
		if err != nil {
			return nil, err
		}
		fx.reports[p] = m
	}
	sigs, err := readObject("signatures.json")
	if err != nil {
		return nil, err
	}
	fx.signatures = map[string]map[string]any{}
	for name, v := range sigs {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("capetest: signatures.json: %s is not an object", name)
		}
		fx.signatures[name] = m
	}
	for _, x := range []struct {
		name string
		dst  *[]byte
	}{{"not_found.html", &fx.notFound}, {"unavailable.html", &fx.unavailable}, {"forbidden_report.html", &fx.forbiddenReport}} {
		b, err := fixtureFS.ReadFile("testdata/" + x.name)
		if err != nil {
			return nil, fmt.Errorf("capetest: fixture %s: %w", x.name, err)
		}
		*x.dst = b
	}
	return fx, nil
}

func readObject(name string) (map[string]any, error) {
	b, err := fixtureFS.ReadFile("testdata/" + name)
	if err != nil {
		return nil, fmt.Errorf("capetest: fixture %s: %w", name, err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("capetest: fixture %s: %w", name, err)
	}
	return m, nil
}

// clone deep-copies a decoded JSON value.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clone(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = clone(e)
		}
		return s
	default:
		return v
	}
}

func cloneObject(m map[string]any) map[string]any { return clone(m).(map[string]any) }

// object returns m[key] as an object, creating it if it is missing.
func object(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

// signature returns the report entry of a signature by name.
func (fx *fixtures) signature(name string) map[string]any {
	if s, ok := fx.signatures[name]; ok {
		return cloneObject(s)
	}
	return map[string]any{
		"name": name, "description": "capetest signature " + name,
		"categories": []any{"generic"}, "severity": 2, "weight": 1, "confidence": 100,
		"references": []any{}, "data": []any{}, "new_data": []any{}, "alert": false, "families": []any{},
	}
}
