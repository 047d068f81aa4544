package tfkit.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** A model file the app cannot use, with what to do about it (shown to the user as is). */
class ModelFormatException(message: String) : IllegalArgumentException(message)

/** Element types of .tflite tensors (the schema's TensorType numbers) that the app handles. */
enum class DType(val code: Int, val bytes: Int) {
    FLOAT32(0, 4), FLOAT16(1, 2), INT32(2, 4), UINT8(3, 1), INT64(4, 8), BOOL(6, 1), INT16(7, 2), INT8(9, 1);

    val label: String get() = name.lowercase()

    companion object {
        fun of(code: Int): DType? = entries.firstOrNull { it.code == code }
        fun named(label: String): DType? = entries.firstOrNull { it.label == label }
    }
}

/** One input or output by its signature name (and its graph tensor name): shape, element type and (scale, zero point). */
data class TensorInfo(val name: String, val shape: List<Int>, val dtype: DType, val scale: Float, val zeroPoint: Int,
                      val tensorName: String = name) {
    val elements: Int get() = shape.fold(1) { a, b -> a * b }
    val byteSize: Int get() = elements * dtype.bytes
    val quantized: Boolean get() = scale != 0f
}

/**
 * The parts of a .tflite flatbuffer the app needs, read with bounds checks (a truncated or
 * damaged file is a [ModelFormatException], never an index error): the first signature's inputs
 * and outputs (else subgraph 0's), and the metadata entries by name.
 *
 * Example: `ModelFile(File("m.tflite").readBytes()).metadata["tfkit"]` is the JSON tfkit embedded.
 */
class ModelFile(private val bytes: ByteArray, private val what: String = "model") {
    private val buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
    val inputs: List<TensorInfo>
    val outputs: List<TensorInfo>
    val metadata: Map<String, ByteArray>

    init {
        if (bytes.size < 8 || String(bytes, 4, 4, Charsets.US_ASCII) != "TFL3") {
            throw ModelFormatException("$what is not a .tflite model (${bytes.size} bytes, no TFL3 identifier); " +
                "copy a model converted by tfkit into the model folder")
        }
        val root = u32(0)
        val subgraphs = vector(root, 2) ?: fail("has no subgraphs")
        val signature = vector(root, 7)?.takeIf { it.first > 0 }?.let { element(it, 0) }
        if (signature != null) {
            val graph = element(subgraphs, scalar(signature, 4))
            inputs = tensorMap(graph, vector(signature, 0))
            outputs = tensorMap(graph, vector(signature, 1))
        } else {
            val graph = element(subgraphs, 0)
            inputs = indexList(graph, vector(graph, 1))
            outputs = indexList(graph, vector(graph, 2))
        }
        metadata = readMetadata(root)
        checkReachable(root, subgraphs)
    }

    /** Every table, vector and weight buffer the graph refers to lies inside the file (a cut copy fails here, at load). */
    private fun checkReachable(root: Int, subgraphs: Pair<Int, Int>) {
        fun vectorIn(table: Int, slot: Int, width: Int) = vector(table, slot)?.let { (n, at) -> check(at, n * width) }
        vector(root, 1)?.let { codes -> for (i in 0 until codes.first) { val c = element(codes, i); for (s in 0..3) field(c, s)?.let { check(it, if (s == 0) 1 else 4) } } }
        vector(root, 4)?.let { buffers -> for (i in 0 until buffers.first) vectorIn(element(buffers, i), 0, 1) }
        for (g in 0 until subgraphs.first) {
            val graph = element(subgraphs, g)
            vector(graph, 0)?.let { ts -> for (i in 0 until ts.first) { val t = element(ts, i); vectorIn(t, 0, 4); field(t, 4) } }
            vector(graph, 3)?.let { ops ->
                for (i in 0 until ops.first) {
                    val op = element(ops, i)
                    vectorIn(op, 1, 4); vectorIn(op, 2, 4)
                    field(op, 4)?.let { at -> field(at + u32(at), 0) }  // the builtin options table
                }
            }
        }
    }

    private fun fail(why: String): Nothing =
        throw ModelFormatException("$what is damaged or truncated: it $why; copy the model again (tfkit flash)")

    private fun check(pos: Int, len: Int) {
        if (pos < 0 || len < 0 || pos.toLong() + len > bytes.size) fail("ends before byte ${pos.toLong() + len} of ${bytes.size}")
    }

    private fun u32(pos: Int): Int { check(pos, 4); return buf.getInt(pos) }
    private fun u16(pos: Int): Int { check(pos, 2); return buf.getShort(pos).toInt() and 0xffff }

    /** Absolute position of a table's field `slot`, or null when absent. */
    private fun field(table: Int, slot: Int): Int? {
        val vtable = table - u32(table)
        val offset = if (4 + 2 * slot < u16(vtable)) u16(vtable + 4 + 2 * slot) else 0
        return if (offset == 0) null else table + offset
    }

    private fun scalar(table: Int, slot: Int, default: Int = 0): Int = field(table, slot)?.let { u32(it) } ?: default
    private fun byteField(table: Int, slot: Int): Int = field(table, slot)?.let { check(it, 1); bytes[it].toInt() } ?: 0
    private fun long(table: Int, slot: Int): Long = field(table, slot)?.let { check(it, 8); buf.getLong(it) } ?: 0L

    /** (count, position of element 0) of the vector field `slot`. */
    private fun vector(table: Int, slot: Int): Pair<Int, Int>? {
        val at = field(table, slot) ?: return null
        val start = at + u32(at)
        val count = u32(start)
        if (count < 0 || count > bytes.size) fail("has a vector of $count elements")
        return count to start + 4
    }

    private fun element(vec: Pair<Int, Int>, i: Int): Int {
        if (i < 0 || i >= vec.first) fail("refers to element $i of ${vec.first}")
        val pos = vec.second + 4 * i
        return pos + u32(pos)
    }

    private fun string(table: Int, slot: Int): String {
        val (len, start) = vector(table, slot) ?: return ""
        check(start, len)
        return String(bytes, start, len, Charsets.UTF_8)
    }

    private fun tensor(graph: Int, index: Int, name: String?): TensorInfo {
        val t = element(vector(graph, 0) ?: fail("has a subgraph without tensors"), index)
        val shape = vector(t, 0)?.let { (n, at) -> List(n) { u32(at + 4 * it) } } ?: emptyList()
        val typeCode = byteField(t, 1)
        val dtype = DType.of(typeCode) ?: throw ModelFormatException(
            "$what: tensor ${name ?: string(t, 3)} has element type $typeCode, which this app does not handle")
        var scale = 0f
        var zero = 0
        field(t, 4)?.let { q0 ->
            val q = q0 + u32(q0)
            vector(q, 2)?.takeIf { it.first > 0 }?.let { (_, at) -> check(at, 4); scale = buf.getFloat(at) }
            vector(q, 3)?.takeIf { it.first > 0 }?.let { (_, at) -> check(at, 8); zero = buf.getLong(at).toInt() }
        }
        val tensorName = string(t, 3)
        return TensorInfo(name ?: tensorName, shape, dtype, scale, zero, tensorName)
    }

    private fun tensorMap(graph: Int, vec: Pair<Int, Int>?): List<TensorInfo> =
        if (vec == null) emptyList() else List(vec.first) { i ->
            val entry = element(vec, i)
            tensor(graph, scalar(entry, 1), string(entry, 0))
        }

    private fun indexList(graph: Int, vec: Pair<Int, Int>?): List<TensorInfo> =
        if (vec == null) emptyList() else List(vec.first) { i -> tensor(graph, u32(vec.second + 4 * i), null) }

    private fun readMetadata(root: Int): Map<String, ByteArray> {
        val entries = vector(root, 6) ?: return emptyMap()
        val buffers = vector(root, 4) ?: fail("has metadata but no buffers")
        return (0 until entries.first).associate { i ->
            val entry = element(entries, i)
            val buffer = element(buffers, scalar(entry, 1))
            val data = vector(buffer, 0)
            val (start, len) = if (data != null && data.first > 0) data.second to data.first
            else long(buffer, 1).toInt() to long(buffer, 2).toInt()  // a buffer stored after the flatbuffer (> 2 GB models)
            check(start, len)
            string(entry, 0) to bytes.copyOfRange(start, start + len)
        }
    }
}
