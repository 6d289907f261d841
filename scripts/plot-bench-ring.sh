#!/bin/sh
# Plots `uvirtio bench ring --json` output: ns per buffer for each batch size
# and ring mode, with the targets of the foundation issue as lines.
# usage: scripts/plot-bench-ring.sh RESULT.json OUT.png
set -eu
json=$1
out=$2
data=$(mktemp)
trap 'rm -f "$data"' EXIT

python3 - "$json" >"$data" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
# The split ring without IN_ORDER (older files have neither field).
r["results"] = [x for x in r["results"] if x.get("layout", "split") == "split" and not x.get("in_order", False)]
modes = [(False, False, "plain"), (True, False, "event_idx"), (False, True, "indirect"), (True, True, "event_idx+indirect")]
print("batch " + " ".join('"%s"' % m[2] for m in modes))
for b in sorted({x["batch"] for x in r["results"]}):
    row = [str(b)]
    for ev, ind, _ in modes:
        v = [x["ns_per_buffer"] for x in r["results"] if x["batch"] == b and x["event_idx"] == ev and x["indirect"] == ind]
        row.append("%.1f" % v[0] if v else "NaN")
    print(" ".join(row))
PY

gnuplot <<GP
set terminal pngcairo size 900,520 font "sans,11"
set output "$out"
set title "uvirtio bench ring: split ring, driver and device on two CPUs (lower is better)"
set ylabel "ns per buffer (median)"
set xlabel "batch size"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set yrange [0:280]
set termoption noenhanced
set grid ytics
set arrow from graph 0, first 250 to graph 1, first 250 nohead dt 2 lw 2 lc rgb "#aa0000"
set label "target, batch 1: 250 ns" at graph 0.02, first 258 tc rgb "#aa0000"
set arrow from graph 0, first 40 to graph 1, first 40 nohead dt 3 lw 2 lc rgb "#0044aa"
set label "target, batch 64: 40 ns" at graph 0.78, first 48 tc rgb "#0044aa"
plot "$data" using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), \
     '' using 4 title columnheader(4), '' using 5 title columnheader(5)
GP
echo "wrote $out"
