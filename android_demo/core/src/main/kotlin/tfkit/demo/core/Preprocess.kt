package tfkit.demo.core

import java.nio.ByteBuffer

/** An RGB picture, 3 bytes a pixel, row after row. */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray = ByteArray(width * height * 3)) {
    init { require(pixels.size == width * height * 3) { "$width x $height RGB needs ${width * height * 3} bytes, got ${pixels.size}" } }
    operator fun get(x: Int, y: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xff
}

/**
 * A YUV_420_888 image as Android's Image / CameraX's ImageProxy hands it over: three planes with
 * their own row strides, chroma at half resolution with a pixel stride of 1 (planar) or 2
 * (semi-planar, U and V interleaved).
 */
class YuvImage(
    val width: Int, val height: Int,
    val y: ByteBuffer, val yRowStride: Int,
    val u: ByteBuffer, val v: ByteBuffer, val uvRowStride: Int, val uvPixelStride: Int,
)

/**
 * The camera frame to model input path, bit for bit tfkit's own: YUV -> RGB (BT.601 limited range,
 * 8-bit fixed point, as libyuv), a clockwise turn by the camera's rotation, tfkit.data.clips.resize_crop
 * (short side to `size`, area shrink by whole blocks then bilinear with half-pixel centres, centre crop)
 * and the normalization + quantization of the runner's to_model_input.
 *
 * Example: `Preprocess.toInput(Preprocess.resizeCrop(Preprocess.rotate(Preprocess.yuvToRgb(img), 90), 32), spec)`.
 */
object Preprocess {
    fun yuvToRgb(img: YuvImage): RgbImage {
        val out = RgbImage(img.width, img.height)
        var o = 0
        for (row in 0 until img.height) {
            val yRow = row * img.yRowStride
            val cRow = (row / 2) * img.uvRowStride
            for (col in 0 until img.width) {
                val c = (img.y.get(yRow + col).toInt() and 0xff) - 16
                val ci = cRow + (col / 2) * img.uvPixelStride
                val d = (img.u.get(ci).toInt() and 0xff) - 128
                val e = (img.v.get(ci).toInt() and 0xff) - 128
                out.pixels[o++] = clamp8((298 * c + 409 * e + 128) shr 8)
                out.pixels[o++] = clamp8((298 * c - 100 * d - 208 * e + 128) shr 8)
                out.pixels[o++] = clamp8((298 * c + 516 * d + 128) shr 8)
            }
        }
        return out
    }

    private fun clamp8(v: Int): Byte = v.coerceIn(0, 255).toByte()

    /** Turn clockwise by 0, 90, 180 or 270 degrees (ImageInfo.rotationDegrees), making the frame upright. */
    fun rotate(img: RgbImage, degrees: Int): RgbImage {
        val turns = Math.floorMod(degrees / 90, 4)
        require(degrees % 90 == 0) { "rotation must be a multiple of 90 degrees, got $degrees" }
        if (turns == 0) return img
        val (w, h) = if (turns % 2 == 1) img.height to img.width else img.width to img.height
        val out = RgbImage(w, h)
        for (y in 0 until h) for (x in 0 until w) {
            val (sx, sy) = when (turns) {
                1 -> y to img.height - 1 - x
                2 -> img.width - 1 - x to img.height - 1 - y
                else -> img.width - 1 - y to x
            }
            for (c in 0 until 3) out.pixels[(y * w + x) * 3 + c] = img.pixels[(sy * img.width + sx) * 3 + c]
        }
        return out
    }

    /** tfkit.data.clips.resize_crop for one frame, in the same float32 steps. */
    fun resizeCrop(img: RgbImage, size: Int): RgbImage {
        require(size >= 1) { "size must be positive, got $size" }
        val (h, w) = img.height to img.width
        val short = minOf(h, w)
        if (short == size) {  // an exact crop keeps pixels bit for bit
            val (top, left) = (h - size) / 2 to (w - size) / 2
            val out = RgbImage(size, size)
            for (y in 0 until size) System.arraycopy(img.pixels, ((top + y) * w + left) * 3, out.pixels, y * size * 3, size * 3)
            return out
        }
        val factor = short / size
        val (sh, sw, src) = if (factor >= 2) boxShrink(img, factor)
        else Triple(h, w, FloatArray(h * w * 3) { (img.pixels[it].toInt() and 0xff).toFloat() })
        val scale = size.toDouble() / minOf(sh, sw)
        val ty = taps(sh, scale, size)
        val tx = taps(sw, scale, size)
        val out = RgbImage(size, size)
        val rows = FloatArray(sw * 3)
        for (oy in 0 until size) {
            val wy = ty.weight[oy]
            val wy1 = 1f - wy
            val a = ty.lower[oy] * sw * 3
            val b = ty.upper[oy] * sw * 3
            for (i in 0 until sw * 3) rows[i] = src[a + i] * wy1 + src[b + i] * wy
            for (ox in 0 until size) {
                val wx = tx.weight[ox]
                val wx1 = 1f - wx
                for (c in 0 until 3) {
                    val v = rows[tx.lower[ox] * 3 + c] * wx1 + rows[tx.upper[ox] * 3 + c] * wx
                    out.pixels[(oy * size + ox) * 3 + c] = Tensors.round(v, 0, 255).toByte()
                }
            }
        }
        return out
    }

    /** Mean of each factor x factor block (the remainder trimmed evenly): exact integer sums, one float32 division. */
    private fun boxShrink(img: RgbImage, f: Int): Triple<Int, Int, FloatArray> {
        val (hh, ww) = img.height / f to img.width / f
        val (top, left) = (img.height % f) / 2 to (img.width % f) / 2
        val count = (f * f).toFloat()
        val out = FloatArray(hh * ww * 3)
        for (by in 0 until hh) for (bx in 0 until ww) for (c in 0 until 3) {
            var sum = 0
            for (dy in 0 until f) for (dx in 0 until f) sum += img[left + bx * f + dx, top + by * f + dy, c]
            out[(by * ww + bx) * 3 + c] = sum.toFloat() / count
        }
        return Triple(hh, ww, out)
    }

    private class Taps(val lower: IntArray, val upper: IntArray, val weight: FloatArray)

    /** tfkit's _bilinear_taps: half-pixel centres of the `outLen` cropped pixels, in float64, weights in float32. */
    private fun taps(inLen: Int, scale: Double, outLen: Int): Taps {
        val resized = maxOf(outLen, Math.rint(inLen * scale).toInt())
        val offset = (resized - outLen) / 2
        val lower = IntArray(outLen)
        val upper = IntArray(outLen)
        val weight = FloatArray(outLen)
        for (i in 0 until outLen) {
            val centre = (((i + offset) + 0.5) / scale - 0.5).coerceIn(0.0, (inLen - 1).toDouble())
            lower[i] = Math.floor(centre).toInt()
            upper[i] = minOf(lower[i] + 1, inLen - 1)
            weight[i] = (centre - lower[i]).toFloat()
        }
        return Taps(lower, upper, weight)
    }

    /** One upright size x size frame -> the input's bytes: pixel * scale + offset in float32, then quantized. */
    fun toInput(img: RgbImage, spec: ModelSpec): ByteArray {
        val norm = spec.normalization ?: return img.pixels.copyOf()  // raw uint8 pixels: the model normalizes inside
        val scale = norm.scale.toFloat()
        val offset = norm.offset.toFloat()
        val x = FloatArray(img.pixels.size) { (img.pixels[it].toInt() and 0xff).toFloat() * scale + offset }
        val frame = spec.input.copy(shape = listOf(img.height, img.width, 3))
        return Tensors.quantize(x, frame)
    }
}
