package tfkit.demo.core

import kotlin.math.sqrt

/**
 * Latency summary computed as tfkit's runner.py computes it: nearest-rank percentiles (each one a
 * real observation), mean and population std over the times summed in sorted order.
 *
 * Example: `LatencyStats.of(listOf(3.0, 1.0, 2.0)).p50` is 2.0.
 */
data class LatencyStats(val p50: Double, val p90: Double, val p99: Double, val mean: Double, val min: Double,
                        val max: Double, val std: Double, val runs: Int, val times: List<Double>) {
    fun toJson(): Map<String, Any?> = linkedMapOf("p50" to p50, "p90" to p90, "p99" to p99, "mean" to mean, "min" to min,
        "max" to max, "std" to std, "runs" to runs, "method" to "nearest-rank", "times_ms" to times)

    companion object {
        /** The smallest value with at least `percent`% of the values <= it (runner.nearest_rank). */
        fun nearestRank(sorted: List<Double>, percent: Int): Double {
            val rank = (percent * sorted.size + 99) / 100
            return sorted[maxOf(1, rank) - 1]
        }

        fun of(times: List<Double>): LatencyStats {
            require(times.isNotEmpty()) { "no times to summarize" }
            val ordered = times.sorted()
            var sum = 0.0
            for (t in ordered) sum += t
            val mean = sum / ordered.size
            var sq = 0.0
            for (t in ordered) sq += (t - mean) * (t - mean)
            return LatencyStats(nearestRank(ordered, 50), nearestRank(ordered, 90), nearestRank(ordered, 99), mean,
                ordered.first(), ordered.last(), sqrt(sq / ordered.size), ordered.size, times.toList())
        }
    }
}

/** The last `size` frame times, for the on-screen p50 and effective fps. */
class LatencyWindow(private val size: Int) {
    private val times = ArrayDeque<Double>()
    private val stamps = ArrayDeque<Long>()

    fun add(ms: Double, timestampNs: Long) {
        times.addLast(ms); stamps.addLast(timestampNs)
        if (times.size > size) { times.removeFirst(); stamps.removeFirst() }
    }

    fun p50(): Double? = if (times.isEmpty()) null else LatencyStats.nearestRank(times.sorted(), 50)

    /** Frames per second over the window (null until two frames are in). */
    fun fps(): Double? = if (stamps.size < 2) null else (stamps.size - 1) * 1e9 / (stamps.last() - stamps.first())
}
