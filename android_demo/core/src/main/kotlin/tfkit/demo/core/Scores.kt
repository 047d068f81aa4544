package tfkit.demo.core

import kotlin.math.exp

data class Scored(val label: String, val score: Float)

/**
 * Softmax scores smoothed over frames (an exponential moving average: `alpha` of the new frame), and
 * the top k of them, truncated to k (or to the class count when that is smaller).
 *
 * Example: `ScoreSmoother(0.3).update(logits)` then `topK(scores, spec.labels, 3)`.
 */
class ScoreSmoother(private val alpha: Float) {
    private var smoothed: FloatArray? = null

    init { require(alpha > 0f && alpha <= 1f) { "alpha must be in (0, 1], got $alpha" } }

    fun reset() { smoothed = null }

    fun update(logits: FloatArray): FloatArray {
        val p = softmax(logits)
        val s = smoothed?.takeIf { it.size == p.size }?.let { old -> FloatArray(p.size) { old[it] + alpha * (p[it] - old[it]) } } ?: p
        smoothed = s
        return s.copyOf()
    }

    companion object {
        fun softmax(logits: FloatArray): FloatArray {
            val max = logits.maxOrNull() ?: return logits
            val e = FloatArray(logits.size) { exp((logits[it] - max).toDouble()).toFloat() }
            val sum = e.sum()
            return FloatArray(e.size) { e[it] / sum }
        }
    }
}

fun topK(scores: FloatArray, labels: List<String>, k: Int): List<Scored> {
    require(labels.size == scores.size) { "${labels.size} labels for ${scores.size} scores" }
    return scores.indices.sortedWith(compareByDescending<Int> { scores[it] }.thenBy { it })
        .take(maxOf(0, k)).map { Scored(labels[it], scores[it]) }
}
