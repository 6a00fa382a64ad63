package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
)

// The reference codec: encoding/json, as the format is defined ("the JSON
// of Record"). The hand-written codec must agree with it.

func marshalJSON(r *Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil
}

// parseJSON accepts line if encoding/json decodes it strictly to a valid
// record that re-encodes to the same bytes.
func parseJSON(line []byte) (*Record, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var r Record
	if dec.Decode(&r) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	if r.Validate() != nil {
		return nil, false
	}
	again, err := marshalJSON(&r)
	if err != nil || !bytes.Equal(again, line) {
		return nil, false
	}
	return &r, true
}

// checkAgainstJSON fails t if the two codecs disagree on line.
func checkAgainstJSON(t *testing.T, line []byte) {
	t.Helper()
	got, err := ParseRecord(line)
	want, ok := parseJSON(line)
	if (err == nil) != ok {
		t.Fatalf("hand codec accepts=%v (%v), encoding/json accepts=%v:\n%q", err == nil, err, ok, line)
	}
	if !ok {
		return
	}
	if !got.Time.Equal(want.Time) {
		t.Fatalf("time %v vs %v", got.Time, want.Time)
	}
	got.Time = want.Time
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records differ:\n%+v\n%+v", got, want)
	}
	ref, _ := marshalJSON(want)
	if hand := appendRecord(nil, want); !bytes.Equal(hand, ref) {
		t.Fatalf("encoders differ:\n%s\n%s", hand, ref)
	}
}

func TestCodecAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	lines, _ := benchLines(t, 200)
	for _, l := range lines {
		checkAgainstJSON(t, bytes.TrimSuffix(l, []byte("\n")))
	}
	for _, s := range []string{
		`{"seq":0,"time":"2026-11-21T10:00:00Z","station":"a","operator":"q\"uo\\te <&> Ż","event":"e","id":"i","result":"ok","details":{"a":"1","b":"\\"},"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"seq":0,"time":"2026-11-21T10:00:00Z","station":"a","operator":"\u0041","event":"e","id":"i","result":"ok","prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"seq":0,"time":"2026-11-21T10:00:00Z","station":"a","operator":"b","event":"e","id":"i","result":"ok","details":{"b":"1","a":"2"},"prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"seq":0,"time":"2026-11-21T10:00:00Z","station":"a","operator":"b","device":"","event":"e","id":"i","result":"ok","prev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
	} {
		checkAgainstJSON(t, []byte(s))
	}
}
