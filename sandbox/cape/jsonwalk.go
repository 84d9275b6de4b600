package cape

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Helpers to pull values out of a json.Decoder token stream. Each consumes
// exactly one JSON value, tolerates a value of another type than expected
// (it is skipped), and never holds more than one scalar in memory.

// syntaxErr marks decoder errors caused by bad or truncated JSON.
func syntaxErr(err error) error {
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return fmt.Errorf("%w: %v", errSyntax, err)
	}
	return err
}

// walkObject calls fn for each key of an object value; fn must consume the
// key's value. A null or a value of another type is skipped, unless top is
// set, where anything but an object is an error.
func walkObject(dec *json.Decoder, top bool, fn func(key string) error) error {
	t, err := dec.Token()
	if err != nil {
		return syntaxErr(err)
	}
	if d, ok := t.(json.Delim); ok && d == '{' {
		return objectBody(dec, fn)
	}
	if top {
		return fmt.Errorf("%w: not a JSON object", errSyntax)
	}
	if d, ok := t.(json.Delim); ok {
		return skipRest(dec, d)
	}
	return nil
}

// objectBody walks the keys of an object whose '{' was consumed.
func objectBody(dec *json.Decoder, fn func(key string) error) error {
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return syntaxErr(err)
		}
		key, ok := t.(string)
		if !ok {
			return fmt.Errorf("%w: object key %v", errSyntax, t)
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return syntaxErr(err)
}

// walkArray calls fn for each element of an array value; fn must consume
// the element. Anything else is skipped.
func walkArray(dec *json.Decoder, fn func() error) error {
	t, err := dec.Token()
	if err != nil {
		return syntaxErr(err)
	}
	d, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	if d != '[' {
		return skipRest(dec, d)
	}
	for dec.More() {
		if err := fn(); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	return syntaxErr(err)
}

// skip consumes one value.
func skip(dec *json.Decoder) error {
	t, err := dec.Token()
	if err != nil {
		return syntaxErr(err)
	}
	if d, ok := t.(json.Delim); ok {
		return skipRest(dec, d)
	}
	return nil
}

// skipRest consumes the rest of a composite value whose opening delimiter
// was read.
func skipRest(dec *json.Decoder, open json.Delim) error {
	if open != '{' && open != '[' {
		return fmt.Errorf("%w: unexpected %v", errSyntax, open)
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return syntaxErr(err)
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// readString reads a string value ("" for null or another type).
func readString(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", syntaxErr(err)
	}
	switch v := t.(type) {
	case string:
		return clip(v), nil
	case json.Delim:
		return "", skipRest(dec, v)
	}
	return "", nil
}

// readNumber reads a number value; ok is false for null or another type.
func readNumber(dec *json.Decoder) (float64, bool, error) {
	t, err := dec.Token()
	if err != nil {
		return 0, false, syntaxErr(err)
	}
	switch v := t.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) {
			return 0, false, nil
		}
		return f, true, nil
	case json.Delim:
		return 0, false, skipRest(dec, v)
	}
	return 0, false, nil
}

// readInt reads a number as an int bounded to ±1e6.
func readInt(dec *json.Decoder) (int, error) {
	f, ok, err := readNumber(dec)
	if !ok {
		return 0, err
	}
	return int(max(-1e6, min(1e6, f))), nil
}

// readStrings reads a list of strings, keeping at most maxListItems.
func readStrings(dec *json.Decoder) ([]string, error) {
	var out []string
	err := walkArray(dec, func() error {
		s, err := readString(dec)
		if s != "" && len(out) < maxListItems {
			out = append(out, s)
		}
		return err
	})
	return out, err
}

// clip bounds a string kept from a report.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	return strings.ToValidUTF8(s[:maxText], "")
}
