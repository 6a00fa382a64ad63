package syslog_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"fuseline/reports/syslog"
)

func TestMessageFormat(t *testing.T) {
	t.Parallel()
	tm := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		m    syslog.Message
		want string
	}{
		{"full", syslog.Message{
			Facility: syslog.FacilityLogAudit, Severity: syslog.SeverityInfo, Time: tm,
			Hostname: "st-01", AppName: "fuseline", MsgID: "efuse.burn",
			Data: []syslog.Element{{ID: "audit@32473", Params: []syslog.Param{{"seq", "7"}, {"note", `a "q" \ b] c`}}}},
			Msg:  `{"seq":7}`,
		}, `<110>1 2026-11-21T09:00:00.123456Z st-01 fuseline - efuse.burn [audit@32473 seq="7" note="a \"q\" \\ b\] c"] {"seq":7}`},
		{"nil values", syslog.Message{Severity: syslog.SeverityDebug}, `<7>1 - - - - - -`},
		{"whole second keeps six digits", syslog.Message{Facility: syslog.FacilityLocal0, Severity: syslog.SeverityNotice,
			Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Data: []syslog.Element{{ID: "x@1"}, {ID: "y@1", Params: []syslog.Param{{"a", ""}}}}},
			`<133>1 2026-01-02T03:04:05.000000Z - - - - [x@1][y@1 a=""]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := tc.m.Format()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("\n got %s\nwant %s", b, tc.want)
			}
			// go-syslog (what the tests' SIEM uses) reads it back.
			pm, err := rfc5424.NewParser().Parse(b)
			if err != nil {
				t.Fatalf("go-syslog: %v", err)
			}
			m := pm.(*rfc5424.SyslogMessage)
			if !tc.m.Time.IsZero() && !m.Timestamp.Equal(tc.m.Time.Truncate(time.Microsecond)) {
				t.Fatalf("timestamp %v, want %v", m.Timestamp, tc.m.Time)
			}
			for _, e := range tc.m.Data {
				for _, p := range e.Params {
					if got := (*m.StructuredData)[e.ID][p.Name]; got != p.Value {
						t.Fatalf("SD %s %s = %q, want %q", e.ID, p.Name, got, p.Value)
					}
				}
			}
			if tc.m.Msg != "" && *m.Message != tc.m.Msg {
				t.Fatalf("msg %q", *m.Message)
			}
		})
	}
}

func TestMessageFormatRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		m     syslog.Message
		field string
	}{
		{"hostname with space", syslog.Message{Hostname: "st 01"}, "hostname"},
		{"app-name too long", syslog.Message{AppName: strings.Repeat("a", 49)}, "app-name"},
		{"msgid non-ASCII", syslog.Message{MsgID: "é"}, "msgid"},
		{"sd-id with =", syslog.Message{Data: []syslog.Element{{ID: "a=b"}}}, "sd-id"},
		{"param name too long", syslog.Message{Data: []syslog.Element{{ID: "a@1", Params: []syslog.Param{{strings.Repeat("p", 33), ""}}}}}, "param-name"},
		{"param value not UTF-8", syslog.Message{Data: []syslog.Element{{ID: "a@1", Params: []syslog.Param{{"p", "\xff"}}}}}, "param-value"},
		{"severity", syslog.Message{Severity: 8}, "severity"},
		{"facility", syslog.Message{Facility: 24}, "facility"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.m.Format()
			var fe *syslog.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Format: %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	if got := string(syslog.AppendFrame([]byte("x"), []byte("<7>1 - - - - - -"))); got != "x16 <7>1 - - - - - -" {
		t.Fatalf("frame %q", got)
	}
}
