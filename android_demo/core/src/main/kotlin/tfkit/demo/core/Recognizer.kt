package tfkit.demo.core

/** What the screen shows after a frame the model ran on. */
data class Recognition(val top: List<Scored>, val latencyMs: Double, val p50Ms: Double?, val fps: Double?, val resetReason: String?)

/**
 * The per-frame logic behind the camera: frames sampled to the model's fps, the stream reset by the
 * [ResetPolicy], each kept frame preprocessed and run (stream: state carried; clip: the last T frames),
 * scores smoothed and the top k taken, latency over the last `window` frames. Pure Kotlin; the app's
 * analyzer hands it each camera frame on the one thread that owns the interpreter.
 *
 * Example: `recognizer.onFrame(yuv, rotationDegrees, timestampNs, "back")?.let(ui::show)`.
 */
class Recognizer(
    private val spec: ModelSpec,
    private val inference: Inference,
    private val topK: Int = 3,
    smoothing: Float = 0.3f,
    window: Int = 30,
    private val clock: () -> Long = System::nanoTime,
) {
    private val sampler = FrameSampler(spec.fps)
    private val resets = ResetPolicy(spec.fps)
    private val stream = if (spec.form == Form.STREAM) StreamSession(spec, inference) else null
    private val clip = if (spec.form == Form.CLIP) ClipBuffer(spec.frames, spec.frameBytes) else null
    private val smoother = ScoreSmoother(smoothing)
    private val latency = LatencyWindow(window)

    /** Null when the frame is skipped (between the model's ticks, or while a clip fills up). */
    fun onFrame(image: YuvImage, rotationDegrees: Int, timestampNs: Long, camera: String): Recognition? {
        val reason = resets.check(timestampNs, camera)
        if (reason != null) {
            sampler.reset(); stream?.reset(); clip?.reset(); smoother.reset()
        }
        if (!sampler.accept(timestampNs)) return null
        val frame = Preprocess.toInput(Preprocess.resizeCrop(Preprocess.rotate(Preprocess.yuvToRgb(image), rotationDegrees), spec.size), spec)
        val t0 = clock()
        val logits = if (stream != null) stream.step(frame) else {
            val input = clip!!.push(frame) ?: return null
            spec.dequantize(inference.run(mapOf(spec.input.name to input))[spec.logits.name]
                ?: throw IllegalStateException("the interpreter returned no '${spec.logits.name}'"))
        }
        val ms = (clock() - t0) / 1e6
        latency.add(ms, timestampNs)
        return Recognition(topK(smoother.update(logits), spec.labels, topK), ms, latency.p50(), latency.fps(), reason)
    }
}
