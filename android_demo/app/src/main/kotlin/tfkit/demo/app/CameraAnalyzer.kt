package tfkit.demo.app

import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import tfkit.demo.core.Recognition
import tfkit.demo.core.Recognizer
import tfkit.demo.core.YuvImage

/**
 * CameraX's analyzer: each YUV_420_888 frame goes to core's [Recognizer] on the analysis thread (the
 * one thread that owns the interpreter). The analysis use case keeps only the latest frame, so stale
 * frames are dropped rather than queued.
 */
class CameraAnalyzer(
    @Volatile var recognizer: Recognizer?,
    @Volatile var camera: String,
    private val show: (Recognition) -> Unit,
    private val fail: (Exception) -> Unit,
) : ImageAnalysis.Analyzer {
    override fun analyze(image: ImageProxy) {
        image.use {
            val r = recognizer ?: return
            val (y, u, v) = image.planes
            val yuv = YuvImage(image.width, image.height, y.buffer, y.rowStride, u.buffer, v.buffer, u.rowStride, u.pixelStride)
            try {
                r.onFrame(yuv, image.imageInfo.rotationDegrees, image.imageInfo.timestamp, camera)?.let(show)
            } catch (e: Exception) {
                recognizer = null
                fail(e)
            }
        }
    }
}
