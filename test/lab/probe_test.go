package lab

import (
	"errors"
	"testing"
	"time"
)

func TestGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	fail := errors.New("timeout")
	// samples: "." a success, "x" a failure, one every 10 ms.
	mk := func(pattern string) ProbeResult {
		var r ProbeResult
		for i, c := range pattern {
			s := Sample{Sent: at(10 * i)}
			if c == 'x' {
				s.Err = fail
			}
			r.Samples = append(r.Samples, s)
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		pattern string
		want    []Gap
		longest time.Duration
	}{
		{"all fine", "......", nil, 0},
		{"one gap", "..xxx..", []Gap{{From: at(10), To: at(50), Failed: 3}}, 40 * time.Millisecond},
		{"two gaps", ".x..xx.", []Gap{{From: at(0), To: at(20), Failed: 1}, {From: at(30), To: at(60), Failed: 2}}, 30 * time.Millisecond},
		{"starts failing", "xx..", []Gap{{From: at(0), To: at(20), Failed: 2}}, 20 * time.Millisecond},
		{"never recovers", "..xx", []Gap{{From: at(10), Failed: 2}}, 0},
		{"never works", "xxx", []Gap{{From: at(0), Failed: 3}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mk(tc.pattern)
			got := r.Gaps()
			if len(got) != len(tc.want) {
				t.Fatalf("gaps %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("gap %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if r.Longest() != tc.longest {
				t.Errorf("longest %s, want %s", r.Longest(), tc.longest)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Reply
		ok       bool
	}{
		{"as served", PodReply("ns/web-0", "node-1", "[2001:db8:100::10]:4242"), Reply{"ns/web-0", "node-1", "[2001:db8:100::10]:4242"}, true},
		{"missing client", "pod=a node=b", Reply{}, false},
		{"garbage", "<html>", Reply{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReply(tc.in)
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Errorf("ParseReply(%q) = %+v, %v", tc.in, got, err)
			}
		})
	}
}
