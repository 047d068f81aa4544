package tfkit.demo.core

/** One call of the model: tensors by signature name, as raw little-endian bytes. The app's LiteRT wrapper implements it. */
fun interface Inference {
    fun run(inputs: Map<String, ByteArray>): Map<String, ByteArray>
}

/**
 * A streaming model run frame by frame: each state's `<name>_out` is carried into `<name>_in` for
 * the next frame (requantized where the model's parameters differ, as tfkit's runners do), and a new
 * stream starts every state at the value that means zero (the zero point for int8 states).
 *
 * Example: `StreamSession(spec, inference).step(frameBytes)` gives the frame's float logits.
 */
class StreamSession(private val spec: ModelSpec, private val inference: Inference) {
    private val values = LinkedHashMap<String, ByteArray>()

    /** The states whose values change scale on the way back in. */
    val requantized: List<String> = spec.states.filter { it.requantize }.map { it.name }

    init {
        require(spec.form == Form.STREAM) { "a ${spec.form} model has no stream state" }
        reset()
    }

    fun reset() {
        for (s in spec.states) values[s.input.name] = Tensors.zeros(s.input)
    }

    /** The state inputs the next step will feed, by input name (read-only copies). */
    fun nextStates(): Map<String, ByteArray> = values.mapValues { it.value.copyOf() }

    fun step(frame: ByteArray): FloatArray {
        if (frame.size != spec.input.byteSize) throw IllegalArgumentException(
            "frame has ${frame.size} bytes; input '${spec.input.name}' ${spec.input.shape} takes ${spec.input.byteSize}")
        val outputs = inference.run(mapOf(spec.input.name to frame) + values)
        for (s in spec.states) {
            val raw = outputs[s.output.name] ?: throw IllegalStateException("the interpreter returned no '${s.output.name}'")
            values[s.input.name] = carry(raw, s)
        }
        val logits = outputs[spec.logits.name] ?: throw IllegalStateException("the interpreter returned no '${spec.logits.name}'")
        return Tensors.toFloat(logits, spec.logits)
    }

    companion object {
        /** A state output made into the next step's input: copied when in and out agree, else dequantized and requantized. */
        fun carry(raw: ByteArray, s: StatePair): ByteArray =
            if (!s.requantize) raw.copyOf() else Tensors.quantize(Tensors.toFloat(raw, s.output), s.input)
    }
}

/**
 * When a stream must start again from zero state: the camera was switched, the stream paused, or
 * the frames stopped coming at the model's rate (a state built at another rate means something else).
 * A drift resets once, when it starts; a camera that stays slower than the model is not reset at
 * every frame (the state would never build up).
 *
 * Example: `ResetPolicy(fps = 10.0).check(tNs, "back")` returns a reason to reset, or null.
 */
class ResetPolicy(private val fps: Double?, private val maxGapMs: Double = 1000.0, private val driftTolerance: Double = 0.6) {
    private var lastNs: Long? = null
    private var lastCamera: String? = null
    private var drifting = false

    fun check(timestampNs: Long, camera: String): String? {
        val previous = lastNs
        val gapMs = if (previous == null) 0.0 else (timestampNs - previous) / 1e6
        val periodMs = fps?.let { 1000.0 / it }
        val slow = periodMs != null && gapMs > periodMs * (1 + driftTolerance)
        val reason = when {
            previous == null -> "new stream"
            camera != lastCamera -> "camera switched to $camera"
            timestampNs <= previous -> "timestamps went back"
            gapMs > maxGapMs -> "paused for ${gapMs.toLong()} ms"
            slow && !drifting -> "frame interval drifted to ${"%.1f".format(gapMs)} ms (the model's is ${"%.1f".format(periodMs)} ms)"
            else -> null
        }
        drifting = slow && gapMs <= maxGapMs
        lastNs = timestampNs
        lastCamera = camera
        return reason
    }
}
