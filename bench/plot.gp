# The two plots of a bench/run.sh run, from the data report.py wrote:
#   BASE-latency.png    latency percentiles per system (log scale), one panel per open-loop scenario
#   BASE-overhead.png   per-hop overhead ((proxied - direct) / hops) per proxied system
#
#   gnuplot -e "base='bench/results/2026-11-26-quick'" bench/plot.gp
# (data in BASE/latency.dat and BASE/overhead.dat, panel titles in BASE/plot-titles.gp)

load base."/plot-titles.gp"
set terminal pngcairo size 1400,560 font "sans,11" noenhanced
set key autotitle columnhead outside right top vertical
set grid ytics mytics
set border 3
set xtics nomirror
set ytics nomirror
# One colour per proxy, one dash per hop count (C, D: every system's; PC, PD: the proxied ones',
# from plot-titles.gp): direct black; solid 1 hop, dashed 2 hops, dotted the mTLS hop pair.
cl(i) = C[i > |C| ? |C| : i]
dd(i) = D[i > |D| ? |D| : i]
pcl(i) = PC[i > |PC| ? |PC| : i]
shade(i) = PD[i > |PD| ? |PD| : i] == 1 ? 0.9 : (PD[i > |PD| ? |PD| : i] == 2 ? 0.4 : 0.65)

set output base."-latency.png"
set multiplot layout 1,nblocks title "Latency percentiles (µs, log scale; median of rounds)"
set logscale y
set ylabel "µs"
do for [b=0:nblocks-1] {
    set title value("title".b)
    plot for [i=2:*] base."/latency.dat" index b using i:xtic(1) with linespoints \
        lw 2 pt 7 ps 0.8 lc rgb cl(i-1) dt dd(i-1)
}
unset multiplot

set output base."-overhead.png"
# Log scale too: the tails are ten times the medians, and on a linear axis p50 vanishes. A hop
# that measured <= 0 (within noise) has no bar.
set multiplot layout 1,nblocks title "Per-hop overhead: (proxied − direct) / hops, µs, log scale (median of rounds; ≤ 0 not drawn)"
set style data histograms
# The y range up to the decade above the largest bar, as gnuplot's log autoscale would, but set:
# autoscaling fails when one system has no bar at all.
top(y) = y > 10 ? 10**ceil(log10(y * 1.05)) : 100
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
do for [b=0:nblocks-1] {
    set title value("title".b)
    set yrange [10:top(value("ymax".b))]
    plot for [i=2:*] base."/overhead.dat" index b \
        using (column(i) > 0 ? column(i) : NaN):xtic(1) title columnhead(i) lc rgb pcl(i-1) fs solid shade(i-1)
}
unset multiplot
