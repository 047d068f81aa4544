package tfkit.demo.core

/**
 * The benchmark mode's timed loop, the same for every accelerator: a streaming model is stepped
 * frame by frame with its state carried (as runner.py --stream), a clip model is fed the clip of the
 * last T frames. The first `warmup` steps are untimed; each timed step is the whole call.
 *
 * Example: `Benchmark(spec, interpreter).run(frames, warmup = 10, runs = 100)`.
 */
class Benchmark(private val spec: ModelSpec, private val inference: Inference, private val clock: () -> Long = System::nanoTime) {
    data class Result(val firstMs: Double, val latency: LatencyStats, val warmup: Int, val totalMs: Double, val requantized: List<String>)

    fun run(frames: List<ByteArray>, warmup: Int, runs: Int): Result {
        require(frames.isNotEmpty() && runs >= 1 && warmup >= 0) { "need frames, runs >= 1 and warmup >= 0" }
        val step: (ByteArray) -> Unit
        val requantized: List<String>
        if (spec.form == Form.STREAM) {
            val session = StreamSession(spec, inference)
            requantized = session.requantized
            step = { session.step(it) }
        } else {
            val buffer = ClipBuffer(spec.frames, spec.frameBytes)
            frames.take(spec.frames - 1).forEach { buffer.push(it) }
            requantized = emptyList()
            step = { frame -> inference.run(mapOf(spec.input.name to buffer.push(frame)!!)) }
        }
        val times = ArrayList<Double>(runs)
        var first = 0.0
        val start = clock()
        for (i in 0 until warmup + runs) {
            val t0 = clock()
            step(frames[i % frames.size])
            val ms = (clock() - t0) / 1e6
            if (i == 0) first = ms
            if (i >= warmup) times.add(ms)
        }
        return Result(first, LatencyStats.of(times), warmup, (clock() - start) / 1e6, requantized)
    }
}
