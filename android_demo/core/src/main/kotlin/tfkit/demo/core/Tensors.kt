package tfkit.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Raw tensor bytes (little-endian, as the interpreter holds them) to and from float32, in the same
 * float32 arithmetic as tfkit's runners (runner.py, board_stream.py, tfkit.convert.parity): a
 * value is dequantized as (q - zero) * scale and quantized as round_half_even(x / scale + zero),
 * clipped to the type's range.
 *
 * Example: `Tensors.quantize(floatArrayOf(1f), TensorInfo("x", listOf(1), DType.INT8, 0.5f, 3))` is `[5]`.
 */
object Tensors {
    fun toFloat(raw: ByteArray, t: TensorInfo): FloatArray {
        val b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN)
        val n = raw.size / t.dtype.bytes
        val zero = t.zeroPoint.toFloat()
        fun deq(q: Int): Float = if (t.quantized) (q.toFloat() - zero) * t.scale else q.toFloat()
        return FloatArray(n) { i ->
            when (t.dtype) {
                DType.FLOAT32 -> b.getFloat(4 * i)
                DType.INT8 -> deq(raw[i].toInt())
                DType.UINT8 -> deq(raw[i].toInt() and 0xff)
                DType.INT16 -> deq(b.getShort(2 * i).toInt())
                else -> throw ModelFormatException("tensor '${t.name}' of type ${t.dtype.label} cannot be read as numbers")
            }
        }
    }

    fun quantize(values: FloatArray, t: TensorInfo): ByteArray {
        val out = ByteBuffer.allocate(values.size * t.dtype.bytes).order(ByteOrder.LITTLE_ENDIAN)
        val zero = t.zeroPoint.toFloat()
        for ((i, x) in values.withIndex()) when (t.dtype) {
            DType.FLOAT32 -> out.putFloat(4 * i, x)
            DType.INT8 -> out.put(i, round(x / t.scale + zero, -128, 127).toByte())
            DType.UINT8 -> out.put(i, round(x / t.scale + zero, 0, 255).toByte())
            DType.INT16 -> out.putShort(2 * i, round(x / t.scale + zero, -32768, 32767).toShort())
            else -> throw ModelFormatException("cannot feed tensor '${t.name}' of type ${t.dtype.label}")
        }
        return out.array()
    }

    /** numpy's clip(round(x)) for a float32 (round half to even, as np.round and np.rint). */
    fun round(x: Float, lo: Int, hi: Int): Int = Math.rint(x.toDouble()).coerceIn(lo.toDouble(), hi.toDouble()).toInt()

    /** The value of a tensor that means 0.0: its zero point for integer tensors (tfkit's zero state). */
    fun zeros(t: TensorInfo): ByteArray = quantize(FloatArray(t.elements), t)
}
