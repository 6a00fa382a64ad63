// Package lot builds the report of a run of boards (a lot) from their
// evidence records alone: totals, yield, failures by reason, time per board
// with a chart, and the device list, as HTML (chart as inline SVG) and as a
// deterministic PDF (chart as PNG) for the line's records (design.md,
// "Layout": reports/, lot reports; "Who uses it": the test engineer and QA).
//
// A report says what the evidence says; it does not check signatures. An
// auditor who needs that runs `fuseline report verify` on the bundle.
package lot

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"fuseline/reports/evidence"
)

// Options configures a report. The zero value is usable.
type Options struct {
	// Title heads the report; "": "Lot report — " + the lot names.
	Title string
}

// Report is a lot report, ready to render.
type Report struct {
	Title    string
	Lots     []string // lot names in the records, sorted ("" as "(none)")
	Stations []string // station IDs, sorted
	Releases []string // "product version", sorted
	// First and Last are the earliest start and the latest end of any run.
	First, Last time.Time
	Totals      Totals
	Failures    []FailureGroup // by count, most first
	Time        TimeStats
	Devices     []Row // every record, in start order
}

// Totals counts records (attempts) and devices (distinct MACs).
type Totals struct {
	Records            int // evidence records (a retested board has several)
	Pass, Fail, Refuse int // records by verdict
	Devices            int // distinct MACs
	DevicesPass        int // devices whose latest record is PASS
	FirstPass          int // devices whose first record is PASS
	Retested           int // devices with more than one record
	// Yield is DevicesPass/Devices; FirstPassYield is FirstPass/Devices.
	Yield, FirstPassYield float64
	// NotVerified counts checks recorded as not verified on PASS records.
	NotVerified int
	// Modelled counts PASS records with a check a model answered (the
	// virtual board, QEMU) or whose board-side checks do not say how they
	// were established (evidence v1): nothing in them about the board is
	// proof for a shipped device.
	Modelled int
}

// FailureGroup is the FAIL and REFUSED records that share a reason code.
type FailureGroup struct {
	Code    string // Result.Code, or the reason itself when there is no code
	Verdict string // FAIL or REFUSED (the most common, if mixed)
	Count   int
	Example string   // the reason of the first record in the group
	MACs    []string // devices, in run order
}

// TimeStats summarises time per board over all records.
type TimeStats struct {
	Mean, Median, P90, Min, Max time.Duration
	MeanPass                    time.Duration // over PASS records; 0 if none
	BoardsPerHour               float64       // PASS boards over the span First..Last
}

// Row is one record in the device list.
type Row struct {
	N           int // 1-based, in start order
	File        string
	ID          string
	MAC         string
	Chip        string // chip and revision
	Verdict     string
	Code        string
	Reason      string
	Operator    string
	Station     string // station and slot
	Start       time.Time
	Duration    time.Duration
	NotVerified int // checks not verified
	// Target is what the station talked to (evidence.TargetBoard,
	// TargetVirtual, TargetQEMU).
	Target string
	// Established counts the record's checks by how they were
	// established (evidence.Observed, Computed, Modelled, Unrecorded).
	Established map[string]int
}

// EstablishedText says how a row's checks were established:
// "5 observed, 9 computed" or "9 computed, 5 modelled".
func (r Row) EstablishedText() string {
	var parts []string
	for _, k := range []string{evidence.Observed, evidence.Computed, evidence.Modelled, evidence.Unrecorded} {
		if n := r.Established[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	return joinList(parts)
}

// ModelledOnly reports whether some of the row's checks are not proof for a
// shipped device by how they were established.
func (r Row) ModelledOnly() bool {
	return r.Established[evidence.Modelled]+r.Established[evidence.Unrecorded] > 0
}

// Build makes the report of recs. It fails on an empty lot.
func Build(recs []*evidence.Record, o Options) (*Report, error) {
	if len(recs) == 0 {
		return nil, errors.New("lot: no evidence records to report on")
	}
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b *evidence.Record) int {
		return cmp.Or(a.Timing.Start.Compare(b.Timing.Start), cmp.Compare(a.ID, b.ID))
	})
	r := &Report{}
	lots, stations, releases := map[string]bool{}, map[string]bool{}, map[string]bool{}
	first := map[string]string{} // MAC -> first verdict
	last := map[string]string{}  // MAC -> latest verdict
	count := map[string]int{}
	groups := map[string]*FailureGroup{}
	verdicts := map[string]map[string]int{}
	var durs, passDurs []time.Duration
	for i, rec := range sorted {
		lot := rec.Lot
		if lot == "" {
			lot = "(none)"
		}
		lots[lot] = true
		stations[rec.Station.ID] = true
		releases[rec.Release.Product+" "+rec.Release.Version] = true
		if i == 0 || rec.Timing.Start.Before(r.First) {
			r.First = rec.Timing.Start
		}
		if rec.Timing.End.After(r.Last) {
			r.Last = rec.Timing.End
		}
		mac := rec.Device.MAC
		if _, ok := first[mac]; !ok {
			first[mac] = rec.Result.Verdict
		}
		last[mac] = rec.Result.Verdict
		count[mac]++
		d := time.Duration(rec.Timing.Duration)
		durs = append(durs, d)

		notv := 0
		how := map[string]int{}
		for _, c := range rec.Checks {
			if !c.Verified {
				notv++
			}
			how[rec.Establishment(c)]++
		}
		switch rec.Result.Verdict {
		case evidence.PASS:
			r.Totals.Pass++
			r.Totals.NotVerified += notv
			passDurs = append(passDurs, d)
		case evidence.FAIL, evidence.REFUSED:
			if rec.Result.Verdict == evidence.FAIL {
				r.Totals.Fail++
			} else {
				r.Totals.Refuse++
			}
			key := rec.Result.Code
			if key == "" {
				key = rec.Result.Reason
			}
			g := groups[key]
			if g == nil {
				g = &FailureGroup{Code: key, Example: rec.Result.Reason}
				groups[key] = g
				verdicts[key] = map[string]int{}
			}
			g.Count++
			g.MACs = append(g.MACs, mac)
			verdicts[key][rec.Result.Verdict]++
		}
		chip := rec.Device.Chip
		if rec.Device.Revision != "" {
			chip += " " + rec.Device.Revision
		}
		station := rec.Station.ID
		if rec.Station.Slot != "" {
			station += "/" + rec.Station.Slot
		}
		r.Devices = append(r.Devices, Row{
			N: i + 1, File: rec.FileName(), ID: rec.ID, MAC: mac, Chip: chip,
			Verdict: rec.Result.Verdict, Code: rec.Result.Code, Reason: rec.Result.Reason,
			Operator: rec.Operator.ID, Station: station, Start: rec.Timing.Start, Duration: d, NotVerified: notv,
			Target: rec.Station.Target, Established: how,
		})
		if rec.Result.Verdict == evidence.PASS && r.Devices[len(r.Devices)-1].ModelledOnly() {
			r.Totals.Modelled++
		}
	}
	r.Totals.Records = len(sorted)
	r.Totals.Devices = len(last)
	for mac, v := range last {
		if v == evidence.PASS {
			r.Totals.DevicesPass++
		}
		if first[mac] == evidence.PASS {
			r.Totals.FirstPass++
		}
		if count[mac] > 1 {
			r.Totals.Retested++
		}
	}
	r.Totals.Yield = float64(r.Totals.DevicesPass) / float64(r.Totals.Devices)
	r.Totals.FirstPassYield = float64(r.Totals.FirstPass) / float64(r.Totals.Devices)
	for key, g := range groups {
		g.Verdict = evidence.FAIL
		if verdicts[key][evidence.REFUSED] > verdicts[key][evidence.FAIL] {
			g.Verdict = evidence.REFUSED
		}
		r.Failures = append(r.Failures, *g)
	}
	slices.SortFunc(r.Failures, func(a, b FailureGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Code, b.Code))
	})
	r.Time = timeStats(durs, passDurs, r.Totals.Pass, r.Last.Sub(r.First))
	r.Lots = slices.Sorted(maps.Keys(lots))
	r.Stations = slices.Sorted(maps.Keys(stations))
	r.Releases = slices.Sorted(maps.Keys(releases))
	r.Title = o.Title
	if r.Title == "" {
		r.Title = "Lot report — " + joinList(r.Lots)
	}
	return r, nil
}

func timeStats(all, pass []time.Duration, passCount int, span time.Duration) TimeStats {
	s := slices.Sorted(slices.Values(all))
	var t TimeStats
	t.Min, t.Max = s[0], s[len(s)-1]
	t.Mean = mean(s)
	t.Median = s[len(s)/2]
	if len(s)%2 == 0 {
		t.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	t.P90 = s[min(len(s)-1, (len(s)*9+9)/10-1)]
	if len(pass) > 0 {
		t.MeanPass = mean(pass)
	}
	if span > 0 {
		t.BoardsPerHour = float64(passCount) / span.Hours()
	}
	return t
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return sum / time.Duration(len(d))
}

func joinList(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

// pct formats a ratio as a percentage with one decimal.
func pct(x float64) string { return fmt.Sprintf("%.1f %%", 100*x) }

// secs formats a duration as seconds with one decimal.
func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
