#!/bin/sh
# Plots `uvirtio bench ring --json` output side by side by ring layout: for
# each batch size, ns per buffer of split, split + IN_ORDER, packed and
# packed + IN_ORDER, one panel per feature mode in the file.
# usage: scripts/plot-bench-ring-layouts.sh RESULT.json OUT.png
set -eu
json=$1
out=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

modes=$(python3 - "$json" "$dir" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cols = [("split", False, "split"), ("split", True, "split+in_order"),
        ("packed", False, "packed"), ("packed", True, "packed+in_order")]
names = {(False, False): "plain", (True, False): "event_idx",
         (False, True): "indirect", (True, True): "event_idx+indirect"}
modes = []
for x in r["results"]:
    m = names[(x["event_idx"], x["indirect"])]
    if m not in modes:
        modes.append(m)
for m in modes:
    with open(f"{sys.argv[2]}/{m}.dat", "w") as f:
        f.write("batch " + " ".join('"%s"' % c[2] for c in cols) + "\n")
        for b in sorted({x["batch"] for x in r["results"]}):
            row = [str(b)]
            for layout, io, _ in cols:
                v = [x["ns_per_buffer"] for x in r["results"]
                     if x["batch"] == b and x.get("layout", "split") == layout
                     and x.get("in_order", False) == io and names[(x["event_idx"], x["indirect"])] == m]
                row.append("%.1f" % v[0] if v else "NaN")
            f.write(" ".join(row) + "\n")
print(" ".join(modes))
PY
)
n=$(echo $modes | wc -w)
{
	echo "set terminal pngcairo noenhanced size 900,$((300 * n + 60)) font 'sans,11'"
	echo "set output '$out'"
	echo "set multiplot layout $n,1 title 'uvirtio bench ring: split vs packed, with and without IN_ORDER (ns per buffer, median; lower is better)'"
	echo "set style data histograms; set style histogram clustered gap 1"
	echo "set style fill solid 0.85 border -1; set boxwidth 0.9; set grid ytics"
	echo "set key top right; set termoption noenhanced; set yrange [0:*]"
	echo "set ylabel 'ns per buffer'; set xlabel 'batch size'"
	for m in $modes; do
		echo "set title '$m'"
		echo "plot '$dir/$m.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), '' using 4 title columnheader(4), '' using 5 title columnheader(5)"
	done
	echo "unset multiplot"
} | gnuplot
echo "wrote $out"
