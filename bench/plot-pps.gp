# SPDX-License-Identifier: BSD-3-Clause
# Charts of mpops-bench-pps results; run through bench/pps-plot.sh, which
# turns the JSON into the data files this reads from `dir` and sets `out`.

set terminal pngcairo size 1400,900 font "DejaVu Sans,10" noenhanced
set datafile missing "-"
set grid ytics
set key top right
set style fill solid 0.8 border -1
set style histogram errorbars gap 2 lw 1
set style data histograms
set xtics rotate by -35 left nomirror
set bars 0.5
set yrange [0:*]

# ---- Mpps per setting, one panel per backend ----
if (strlen(backends) > 0) {
set output out.'.png'
set multiplot layout words(backends),1 title "Packet rate (median of rounds; bars: min-max), backend on CPU 0, frontend on CPU 1"
do for [b in backends] {
	f = dir.'/compare-'.b.'.dat'
	set title "against ".b
	set ylabel "Mpps"
	plot f using 2:3:4:xtic(1) title "mpops primary" lc rgb "#2b6cb0", \
	     '' using 5:6:7 title "mpops secondary" lc rgb "#63b3ed", \
	     '' using 8:9:10 title "DPDK net_virtio_user" lc rgb "#dd6b20"
}
unset multiplot

# ---- ours / DPDK's, paired by round ----
set output out.'-ratio.png'
set rmargin 18
set bmargin 11
set title "Ours / DPDK's in the same round (median; bars: min-max); target: >= 1.0"
set ylabel "ratio"
set yrange [0:*]
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lc rgb "red" lw 2 front
plot dir.'/ratio.dat' using 2:3:4:xtic(1) title "mpops primary / DPDK" lc rgb "#2b6cb0", \
     '' using 5:6:7 title "mpops secondary / DPDK" lc rgb "#63b3ed"
unset arrow 1
}

# ---- kicks per packet ----
if (kicks) {
set terminal pngcairo size 1400,800 font "DejaVu Sans,10" noenhanced
set output out.'-kicks.png'
set rmargin 12
set bmargin 13
set xtics font ",9"
set multiplot layout 1,2 title "Notifications (64-byte, mergeable, primary, against mpops-vhost)"
set style histogram clustered gap 1
set title "kicks per packet (0 is not drawn)"
set ylabel "kicks / packet"
set logscale y
set yrange [0.00001:*]
plot dir.'/kicks.dat' using ($3 > 0 ? $3 : 0.00001):xtic(1) title "" lc rgb "#2b6cb0"
unset logscale y
set yrange [0:*]
set title "rate in the same runs"
set ylabel "Mpps"
plot dir.'/kicks.dat' using 2:xtic(1) title "" lc rgb "#dd6b20"
unset multiplot
}

# ---- secondaries sharing the frontend CPU ----
if (strlen(scaling) > 0) {
set terminal pngcairo size 900,600 font "DejaVu Sans,11" noenhanced
set output out.'-scaling.png'
unset rmargin
unset bmargin
set xtics font ",11"
set title "N secondaries on the frontend CPU, one queue pair each (64-byte, mpops-vhost)"
set style data linespoints
unset style histogram
set xtics norotate (1, 2, 4, 8)
set logscale x 2
set xrange [0.8:10]
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set xlabel "secondaries"
set ylabel "total Mpps (median; bars: min-max)"
set key top right
plot for [m in scaling] dir.'/scaling-'.m.'.dat' using 1:2:3:4 with yerrorlines lw 2 title m
}
