package tfkit.demo.core

/** tfkit's pixel normalization: x = pixel * scale + offset (tfkit.types.Normalization). */
data class Normalization(val name: String, val scale: Double, val offset: Double) {
    companion object {
        val UNIT = Normalization("unit", 1.0 / 255.0, 0.0)
        val SYMMETRIC = Normalization("symmetric", 2.0 / 255.0, -1.0)
    }
}

/** One stream state: `<name>_in` fed with the previous step's `<name>_out`, requantized when their parameters differ. */
data class StatePair(val name: String, val input: TensorInfo, val output: TensorInfo) {
    val requantize: Boolean get() = input.dtype != output.dtype || input.scale != output.scale || input.zeroPoint != output.zeroPoint
}

enum class Form { CLIP, STREAM }

/**
 * Everything the app needs to feed a model and read its answer, taken from tfkit's metadata inside
 * the .tflite and checked against the graph when the model loads (never at the first frame).
 * A model without tfkit metadata is accepted when its shapes are unambiguous ([notes] says what was assumed).
 *
 * Example: `ModelSpec.load(File("stream_int8.tflite").readBytes()).states.map { it.name }`.
 */
class ModelSpec private constructor(
    val labels: List<String>,
    val normalization: Normalization?,  // null: a raw-pixel uint8 input
    val form: Form,
    val frames: Int,
    val size: Int,
    val fps: Double?,
    val precision: String,
    val input: TensorInfo,
    val logits: TensorInfo,
    val states: List<StatePair>,
    val metadata: Map<*, *>?,
    val notes: List<String>,
) {
    companion object {
        const val SCHEMA_VERSION = 1L
        private val FRAME_INPUT_NAMES = listOf("frame", "image")  // as runner.py's stream mode

        fun load(bytes: ByteArray, what: String = "model"): ModelSpec {
            val file = ModelFile(bytes, what)
            val raw = file.metadata["tfkit"]
            return if (raw != null) fromMetadata(file, parseMetadata(raw, what), what) else withoutMetadata(file, what)
        }

        private fun parseMetadata(raw: ByteArray, what: String): Map<*, *> {
            val where = "$what's tfkit metadata"
            val json = try { Json.parse(String(raw, Charsets.UTF_8)) } catch (e: IllegalArgumentException) {
                throw ModelFormatException("$where is not valid JSON (${e.message}); reconvert the model with tfkit convert")
            } as? Map<*, *> ?: throw ModelFormatException("$where is not a JSON object; reconvert the model")
            val version = json["schema_version"] as? Long
                ?: throw ModelFormatException("$where has no integer schema_version: not tfkit metadata")
            if (version != SCHEMA_VERSION) throw ModelFormatException(
                "$where has schema version $version, but this app reads version $SCHEMA_VERSION; " +
                    if (version > SCHEMA_VERSION) "update the app" else "reconvert the model")
            return json
        }

        private fun fromMetadata(file: ModelFile, m: Map<*, *>, what: String): ModelSpec {
            val where = "$what's tfkit metadata"
            val form = when (val f = m.str("form", where)) {
                "clip" -> Form.CLIP
                "stream" -> Form.STREAM
                else -> throw ModelFormatException("$where: form '$f' is neither 'clip' nor 'stream'")
            }
            val meta = m.obj("input", where)
            val stream = if (form == Form.STREAM) m.obj("stream", where) else null
            val input = find(file.inputs, stream?.str("frame_input", where) ?: meta.str("name", where), "input", what)
            checkInput(input, meta, what)
            val logits = if (stream != null) find(file.outputs, stream.str("logits_output", where), "output", what)
            else file.outputs.singleOrNull() ?: throw ModelFormatException(
                "$what has ${file.outputs.size} outputs (${file.outputs.map { it.name }}); a clip model needs one")
            val states = stream?.list("states", where)?.map { s ->
                val state = s as? Map<*, *> ?: throw ModelFormatException("$where: a stream state is not an object")
                statePair(file, state.str("name", where), what).also { checkStateQuantization(it, state, what) }
            } ?: emptyList()
            val normName = m.field("normalization", where) as String?
            val scale = m.num("pixel_scale", where)
            val normalization = if (normName == null || scale == null) null
            else Normalization(normName, scale, m.num("pixel_offset", where) ?: 0.0)
            val labels = m.list("labels", where).map { it as? String ?: throw ModelFormatException("$where: labels must be strings") }
            return ModelSpec(
                labels = checkLabels(labels, logits, what), normalization = normalization ?: defaultNormalization(input),
                form = form, frames = m.num("frames", where)?.toInt() ?: frameCount(input, form),
                size = m.num("size", where)?.toInt() ?: input.shape[input.shape.size - 2],
                fps = m.num("fps", where), precision = m.str("precision", where), input = input, logits = logits,
                states = states, metadata = m,
                notes = if (normalization == null && input.dtype != DType.UINT8) listOf(
                    "the metadata records no normalization; assuming symmetric [-1, 1]") else emptyList())
        }

        private fun withoutMetadata(file: ModelFile, what: String): ModelSpec {
            val inNames = file.inputs.map { it.name }.toSet()
            val outNames = file.outputs.map { it.name }.toSet()
            val paired = file.inputs.filter { it.name.endsWith("_in") && it.name.removeSuffix("_in") + "_out" in outNames }
            val hint = "convert it with tfkit convert, which embeds the metadata that names them"
            if (paired.isNotEmpty()) {
                val frame = file.inputs.filter { it.name in FRAME_INPUT_NAMES }.ifEmpty { file.inputs - paired.toSet() }
                    .singleOrNull() ?: throw ModelFormatException(
                    "$what has no tfkit metadata and no single frame input among ${inNames.sorted()}; $hint")
                val heads = file.outputs.filter { !it.name.endsWith("_out") }
                val logits = heads.firstOrNull { it.name == "logits" } ?: heads.singleOrNull()
                    ?: throw ModelFormatException("$what has no tfkit metadata and no single logits output among ${outNames.sorted()}; $hint")
                val states = paired.map { statePair(file, it.name.removeSuffix("_in"), what) }
                return bare(frame, logits, Form.STREAM, states, what)
            }
            val input = file.inputs.singleOrNull()?.takeIf { it.shape.size in 4..5 && it.shape.last() == 3 }
            val output = file.outputs.singleOrNull()
            if (input == null || output == null) throw ModelFormatException(
                "$what has no tfkit metadata, and its inputs ${file.inputs.map { it.name to it.shape }} and " +
                    "${file.outputs.size} outputs do not say which is the picture; $hint")
            return bare(input, output, Form.CLIP, emptyList(), what)
        }

        private fun bare(input: TensorInfo, logits: TensorInfo, form: Form, states: List<StatePair>, what: String) =
            ModelSpec(
                labels = List(logits.shape.last()) { "class $it" }, normalization = defaultNormalization(input),
                form = form, frames = frameCount(input, form), size = input.shape[input.shape.size - 2], fps = null,
                precision = input.dtype.label, input = input, logits = logits, states = states, metadata = null,
                notes = listOf("$what has no tfkit metadata: labels are class numbers, frames are fed at the camera's " +
                    "rate" + if (input.dtype == DType.UINT8 && !input.quantized) "" else ", pixels normalized to [-1, 1]"))

        private fun defaultNormalization(input: TensorInfo): Normalization? =
            if (input.dtype == DType.UINT8 && !input.quantized) null else Normalization.SYMMETRIC

        private fun frameCount(input: TensorInfo, form: Form): Int =
            if (form == Form.CLIP && input.shape.size == 5) input.shape[1] else 1

        private fun find(tensors: List<TensorInfo>, name: String, kind: String, what: String): TensorInfo =
            tensors.firstOrNull { it.name == name } ?: tensors.firstOrNull { it.tensorName == name } ?: throw ModelFormatException(
                "$what's tfkit metadata names $kind '$name', but the model's ${kind}s are ${tensors.map { it.name }}; " +
                    "reconvert the model with tfkit convert")

        private fun statePair(file: ModelFile, name: String, what: String): StatePair {
            val pair = StatePair(name, find(file.inputs, "${name}_in", "input", what), find(file.outputs, "${name}_out", "output", what))
            if (pair.input.shape != pair.output.shape) throw ModelFormatException(
                "$what: state '$name' goes in as ${pair.input.shape} but comes out as ${pair.output.shape}")
            return pair
        }

        private fun checkInput(input: TensorInfo, meta: Map<*, *>, what: String) {
            val where = "$what's tfkit metadata"
            val shape = meta.list("shape", where).ints("$where input shape")
            val dtype = meta.str("dtype", where)
            val q = meta.list("quantization", where)
            val scale = (q.getOrNull(0) as? Number)?.toFloat()
            val zero = (q.getOrNull(1) as? Number)?.toInt()
            if (shape != input.shape || dtype != input.dtype.label || scale != input.scale || zero != input.zeroPoint) {
                throw ModelFormatException("$what: the metadata says input '${input.name}' is $dtype $shape " +
                    "(scale $scale, zero point $zero), the graph says ${input.dtype.label} ${input.shape} " +
                    "(scale ${input.scale}, zero point ${input.zeroPoint}); reconvert the model with tfkit convert")
            }
            if (input.shape.size !in 4..5 || input.shape[0] != 1 || input.shape.last() != 3) throw ModelFormatException(
                "$what: input '${input.name}' has shape ${input.shape}; the app feeds (1, [T,] H, W, 3) RGB")
        }

        private fun checkStateQuantization(pair: StatePair, state: Map<*, *>, what: String) {
            val q = state["quantization"] as? Map<*, *> ?: return  // float states carry none
            for ((key, tensor) in listOf("input" to pair.input, "output" to pair.output)) {
                val sz = q[key] as? List<*> ?: continue
                val scale = (sz.getOrNull(0) as? Number)?.toFloat()
                val zero = (sz.getOrNull(1) as? Number)?.toInt()
                if (scale != tensor.scale || zero != tensor.zeroPoint) throw ModelFormatException(
                    "$what: the metadata gives state '${pair.name}' $key quantization ($scale, $zero), the graph " +
                        "(${tensor.scale}, ${tensor.zeroPoint}); reconvert the model with tfkit convert")
            }
        }

        private fun checkLabels(labels: List<String>, logits: TensorInfo, what: String): List<String> {
            val classes = logits.shape.lastOrNull() ?: 0
            if (labels.isEmpty()) return List(classes) { "class $it" }
            if (labels.size != classes) throw ModelFormatException(
                "$what's metadata has ${labels.size} labels but its output '${logits.name}' ${logits.shape} has " +
                    "$classes classes; reconvert with the dataset the model was trained on (tfkit convert --data)")
            return labels
        }
    }

    /** Bytes of one preprocessed frame (H x W x 3 elements of the input's type). */
    val frameBytes: Int get() = size * size * 3 * input.dtype.bytes

    fun dequantize(raw: ByteArray, tensor: TensorInfo = logits): FloatArray = Tensors.toFloat(raw, tensor)
}
