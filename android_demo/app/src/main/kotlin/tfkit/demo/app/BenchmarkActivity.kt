package tfkit.demo.app

import android.app.Activity
import android.content.Intent
import android.content.IntentFilter
import android.graphics.Bitmap
import android.media.MediaMetadataRetriever
import android.os.BatteryManager
import android.os.Build
import android.os.Bundle
import android.util.Log
import org.tensorflow.lite.TensorFlowLite
import tfkit.demo.core.Benchmark
import tfkit.demo.core.Form
import tfkit.demo.core.ModelFormatException
import tfkit.demo.core.ModelSpec
import tfkit.demo.core.Preprocess
import tfkit.demo.core.RgbImage
import tfkit.demo.core.RunnerReport
import java.io.File
import kotlin.random.Random

/**
 * Benchmark mode for tfkit's harness, started with `am start` and intent extras:
 * model (path, or name in the model folder), accelerator (cpu|gpu|nnapi), threads, warmup, runs,
 * frames (seeded frames) or video (a file on the phone), out (JSON path). It writes one JSON in the
 * runner's schema (tfkit.runner/2) to `out` (temp file + rename), logs it under the tag tfkit-bench,
 * and exits. Streaming models are stepped with their state carried, as runner.py --stream does.
 */
class BenchmarkActivity : Activity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val out = File(intent.getStringExtra("out") ?: File(getExternalFilesDir(null), "benchmark.json").path)
        Thread {
            val json = try { run() } catch (e: Exception) {
                val kind = when (e) {
                    is ModelFormatException -> "load"
                    is IllegalArgumentException, is IllegalStateException -> "usage"
                    else -> "internal"
                }
                RunnerReport.error(kind, "${e::class.simpleName}: ${e.message}")
            }
            val tmp = File(out.path + ".tmp")
            tmp.writeText(json + "\n")
            tmp.renameTo(out)
            Log.i("tfkit-bench", json)
            runOnUiThread { finishAndRemoveTask() }
        }.start()
    }

    private fun run(): String {
        val model = ModelFolder.resolve(this, intent.getStringExtra("model") ?: error("the extra 'model' is required"))
        val want = Accelerator.valueOf((intent.getStringExtra("accelerator") ?: "cpu").uppercase())
        val threads = intent.getIntExtra("threads", 4)
        val warmup = intent.getIntExtra("warmup", 10)
        val runs = intent.getIntExtra("runs", 100)
        val before = RunnerReport.hygieneSnapshot(File("/sys"), battery())
        val baseline = peakRss()
        val spec = ModelSpec.load(model.readBytes(), model.name)
        val frames = intent.getStringExtra("video")?.let { videoFrames(it, spec, maxOf(spec.frames, intent.getIntExtra("frames", 64))) }
            ?: seededFrames(spec, maxOf(spec.frames, intent.getIntExtra("frames", 16)))
        val t0 = System.nanoTime()
        LiteRtInference.open(model, spec, want, threads).use { inference ->
            val initMs = (System.nanoTime() - t0) / 1e6
            val result = Benchmark(spec, inference).run(frames, warmup, runs)
            return RunnerReport(
                modelPath = model.path, modelSizeBytes = model.length(), spec = spec,
                runtimeVersion = TensorFlowLite.runtimeVersion(), threads = threads, warmupRuns = warmup,
                initMs = initMs, firstInferenceMs = result.firstMs, latency = result.latency,
                peakRssMb = peakRss(), baselineRssMb = baseline,
                host = mapOf("system" to "Android", "release" to Build.VERSION.RELEASE, "sdk" to Build.VERSION.SDK_INT,
                    "model" to Build.MODEL, "machine" to Build.SUPPORTED_ABIS.firstOrNull(), "cpu_count" to Runtime.getRuntime().availableProcessors()),
                requestedDelegate = want.name.lowercase(), delegate = inference.ran.name.lowercase(), delegateNote = inference.notice,
                hygieneBefore = before, hygieneAfter = RunnerReport.hygieneSnapshot(File("/sys"), battery()),
                stream = if (spec.form == Form.STREAM) RunnerReport.StreamBlock(result.latency, spec.fps, result.warmup,
                    result.totalMs, result.requantized, spec.states.size, if (spec.metadata != null) "tfkit metadata" else "names") else null,
            ).toJson()
        }
    }

    private fun peakRss(): Double? = RunnerReport.peakRssMb(File("/proc/self/status").readText())

    private fun battery(): Map<String, Any?>? {
        val status = registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED)) ?: return null
        val level = status.getIntExtra(BatteryManager.EXTRA_LEVEL, -1)
        val scale = status.getIntExtra(BatteryManager.EXTRA_SCALE, -1)
        val plugged = status.getIntExtra(BatteryManager.EXTRA_PLUGGED, -1)
        return mapOf("percent" to if (level >= 0 && scale > 0) level * 100 / scale else null,
            "charging" to if (plugged >= 0) plugged != 0 else null)
    }

    private fun seededFrames(spec: ModelSpec, count: Int): List<ByteArray> {
        val random = Random(0)
        return List(count) { Preprocess.toInput(RgbImage(spec.size, spec.size, random.nextBytes(spec.size * spec.size * 3)), spec) }
    }

    /** Frames of a video on the phone, through the same resize + crop + quantization as camera frames. */
    private fun videoFrames(path: String, spec: ModelSpec, count: Int): List<ByteArray> {
        if (Build.VERSION.SDK_INT < 28) error("frames from a video need Android 9 (API 28); pass frames instead")
        val retriever = MediaMetadataRetriever()
        try {
            retriever.setDataSource(path)
            val total = retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_VIDEO_FRAME_COUNT)?.toInt() ?: count
            return List(minOf(count, total)) { i ->
                val bitmap = retriever.getFrameAtIndex(i) ?: error("$path: no frame $i")
                Preprocess.toInput(Preprocess.resizeCrop(rgb(bitmap), spec.size), spec)
            }
        } finally {
            retriever.release()
        }
    }

    private fun rgb(bitmap: Bitmap): RgbImage {
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val out = RgbImage(bitmap.width, bitmap.height)
        for ((i, p) in argb.withIndex()) {
            out.pixels[3 * i] = (p shr 16).toByte(); out.pixels[3 * i + 1] = (p shr 8).toByte(); out.pixels[3 * i + 2] = p.toByte()
        }
        return out
    }
}
