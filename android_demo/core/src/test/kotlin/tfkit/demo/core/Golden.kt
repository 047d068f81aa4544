package tfkit.demo.core

import java.io.File
import java.nio.ByteBuffer

/**
 * The golden files tools/write_android_goldens.py wrote from real tfkit artifacts: the folder named by
 * the system property `tfkit.golden` (tests/android/test_android_core.py regenerates them there from
 * the tfkit under test), else the small set committed under src/test/resources/golden.
 */
object Golden {
    val dir: File by lazy {
        System.getProperty("tfkit.golden")?.let(::File)
            ?: Golden::class.java.getResource("/golden/model.tflite")?.let { File(it.toURI()).parentFile }
            ?: error("no golden files: run tools/write_android_goldens.py DIR and pass -Dtfkit.golden=DIR")
    }

    fun bytes(name: String): ByteArray = File(dir, name).readBytes()

    @Suppress("UNCHECKED_CAST")
    fun json(name: String): Map<String, Any?> = Json.parse(File(dir, name).readText()) as Map<String, Any?>

    class Frame(val record: Map<*, *>, val image: YuvImage) {
        val rotation: Int get() = (record["rotation"] as Long).toInt()
        val newStream: Boolean get() = record["new_stream"] as Boolean
    }

    /** Every golden frame as planar YUV 4:2:0 (pixel stride 1, rows unpadded). */
    val frames: List<Frame> by lazy {
        val all = bytes("frames.bin")
        var at = 0
        (json("frames.json")["frames"] as List<*>).map { r ->
            r as Map<*, *>
            val w = (r["width"] as Long).toInt()
            val h = (r["height"] as Long).toInt()
            fun plane(n: Int) = ByteBuffer.wrap(all.copyOfRange(at, at + n)).also { at += n }
            val y = plane(w * h)
            val u = plane(w / 2 * h / 2)
            val v = plane(w / 2 * h / 2)
            Frame(r, YuvImage(w, h, y, w, u, v, w / 2, 1))
        }.also { check(at == all.size) { "frames.bin has ${all.size - at} bytes left over" } }
    }

    /** The same picture the way many phones deliver it: U and V interleaved (pixel stride 2) and padded rows. */
    fun semiPlanar(img: YuvImage, pad: Int): YuvImage {
        val (w, h) = img.width to img.height
        val yRow = w + pad
        val y = ByteArray(yRow * h)
        for (r in 0 until h) for (c in 0 until w) y[r * yRow + c] = img.y.get(r * img.yRowStride + c)
        val cRow = w + pad
        val vu = ByteArray(cRow * (h / 2))  // V U V U ... as NV21: the U plane starts one byte after V
        for (r in 0 until h / 2) for (c in 0 until w / 2) {
            vu[r * cRow + 2 * c] = img.v.get(r * img.uvRowStride + c)
            vu[r * cRow + 2 * c + 1] = img.u.get(r * img.uvRowStride + c)
        }
        val v = ByteBuffer.wrap(vu)
        val u = ByteBuffer.wrap(vu, 1, vu.size - 1).slice()
        return YuvImage(w, h, ByteBuffer.wrap(y), yRow, u, v, cRow, 2)
    }

    fun differing(a: ByteArray, b: ByteArray): Int =
        if (a.size != b.size) maxOf(a.size, b.size) else a.indices.count { a[it] != b[it] }
}
