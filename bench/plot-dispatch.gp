# Drawing for bench/plot-dispatch.sh (which sets warm, cold, out, term, sub,
# and hascold / hassec: 1 if the report has cold cases / a secondary).
# Data rows: case, then median p10 p90 in ns for the primary and the
# secondary ("-" = not measured there).

if (term eq 'pngcairo') {
	set terminal pngcairo noenhanced size 1200,(hascold ? 960 : 540) font 'sans,10'
} else {
	set terminal png noenhanced size 1200,(hascold ? 960 : 540) font 'sans,10'
}
set output out
set datafile missing '-'

set multiplot layout (hascold ? 2 : 1),1 title "mpops dispatch: ns per call of one small op (log scale)\n".sub
set style textbox opaque noborder margins 1,1
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics mytics
set ylabel 'ns per call'
set xtics scale 0 nomirror
set key top left
set format y '%g'

# Bar j (0 primary, 1 secondary) of case i sits at i + (j - 0.5) / 3;
# its value is written just above the median, over the error bar.
lbl(v) = sprintf(v < 10 ? '%.2f' : '%.0f', v)

secname = 'secondary (another executable; raw_fnptr_shared is not valid there)'
set title 'warm: every call pays its lookup, caches warm'
set yrange [0.5:300]
if (hassec) {
	plot warm using 2:3:4:xtic(1) title 'primary' lc rgb '#3b6ea8', \
	     '' using 5:6:7 title secname lc rgb '#e08a2e', \
	     '' using ($0 - 1.0/6):($2 * 1.18):(lbl($2)) with labels boxed font ',8' notitle, \
	     '' using ($0 + 1.0/6):($5 * 1.18):(lbl($5)) with labels boxed font ',8' notitle
} else {
	plot warm using 2:3:4:xtic(1) title 'primary' lc rgb '#3b6ea8', \
	     '' using ($0 - 1.0/6):($2 * 1.18):(lbl($2)) with labels boxed font ',8' notitle
}

if (hascold) {
	set title 'cold: the lines each lookup reads are flushed before every call'
	set yrange [1:3000]
	if (hassec) {
		plot cold using 2:3:4:xtic(1) title 'primary' lc rgb '#3b6ea8', \
		     '' using 5:6:7 title secname lc rgb '#e08a2e', \
		     '' using ($0 - 1.0/6):($2 * 1.18):(lbl($2)) with labels boxed font ',8' notitle, \
		     '' using ($0 + 1.0/6):($5 * 1.18):(lbl($5)) with labels boxed font ',8' notitle
	} else {
		plot cold using 2:3:4:xtic(1) title 'primary' lc rgb '#3b6ea8', \
		     '' using ($0 - 1.0/6):($2 * 1.18):(lbl($2)) with labels boxed font ',8' notitle
	}
}

unset multiplot
