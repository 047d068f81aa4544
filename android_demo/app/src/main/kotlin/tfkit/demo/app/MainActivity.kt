package tfkit.demo.app

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.view.Gravity
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.FrameLayout
import android.widget.LinearLayout
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import tfkit.demo.core.ModelSpec
import tfkit.demo.core.Recognition
import tfkit.demo.core.Recognizer
import java.io.File
import java.util.concurrent.Executors

/**
 * The live demo: camera preview, the model chooser over the app's model folder, the accelerator and
 * thread pickers, and what the model sees (top-k, latency p50, effective fps, model, precision, and
 * which accelerator actually ran). All model work happens on [worker], the interpreter's one thread.
 */
class MainActivity : ComponentActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private lateinit var preview: PreviewView
    private lateinit var status: TextView
    private lateinit var results: TextView
    private lateinit var models: Spinner
    private lateinit var accelerators: Spinner
    private lateinit var threads: Spinner
    private var lensFacing = CameraSelector.LENS_FACING_BACK
    private var inference: LiteRtInference? = null
    private val analyzer = CameraAnalyzer(null, "back", ::show) { e -> runOnUiThread { status.text = "error: ${e.message}" } }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        preview = PreviewView(this)
        status = TextView(this)
        results = TextView(this).apply { textSize = 20f }
        models = Spinner(this)
        accelerators = Spinner(this)
        threads = Spinner(this)
        val flip = Button(this).apply { text = "switch camera"; setOnClickListener { switchCamera() } }
        val panel = LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setBackgroundColor(0x99000000.toInt())
            listOf(models, accelerators, threads, flip, status, results).forEach { addView(it) }
        }
        setContentView(FrameLayout(this).apply {
            addView(preview)
            addView(panel, FrameLayout.LayoutParams(-1, -2, Gravity.BOTTOM))
        })
        val files = ModelFolder.list(this)
        models.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item,
            files.map { it.parentFile?.name + "/" + it.name }.ifEmpty { listOf("no models in ${ModelFolder.dir(this)}") })
        accelerators.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, Accelerator.entries.map { it.display() })
        threads.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, listOf(1, 2, 4, 8))
        threads.setSelection(2)
        val reload = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(p: AdapterView<*>?, v: View?, position: Int, id: Long) { files.getOrNull(models.selectedItemPosition)?.let(::load) }
            override fun onNothingSelected(p: AdapterView<*>?) = Unit
        }
        listOf(models, accelerators, threads).forEach { it.onItemSelectedListener = reload }
        if (checkSelfPermission(Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) startCamera()
        else requestPermissions(arrayOf(Manifest.permission.CAMERA), 1)
    }

    override fun onRequestPermissionsResult(code: Int, permissions: Array<out String>, grants: IntArray) {
        super.onRequestPermissionsResult(code, permissions, grants)
        if (grants.firstOrNull() == PackageManager.PERMISSION_GRANTED) startCamera() else status.text = "the camera permission is needed"
    }

    /** Loads and checks the model on the worker thread: a bad model is reported now, not at the first frame. */
    private fun load(file: File) {
        val accelerator = Accelerator.entries[accelerators.selectedItemPosition]
        val threadCount = threads.selectedItem as Int
        worker.execute {
            analyzer.recognizer = null
            inference?.close()
            inference = null
            val text = try {
                val spec = ModelSpec.load(file.readBytes(), file.name)
                val opened = LiteRtInference.open(file, spec, accelerator, threadCount)
                inference = opened
                analyzer.recognizer = Recognizer(spec, opened)
                listOfNotNull("${file.parentFile?.name}: ${spec.precision} ${spec.form.name.lowercase()}, " +
                    "${spec.size}px @ ${spec.fps ?: "camera"} fps; running on ${opened.ran.display()}" +
                    if (opened.ran == Accelerator.CPU) " with $threadCount threads" else "",
                    opened.notice?.let { "notice: $it" }, *spec.notes.toTypedArray()).joinToString("\n")
            } catch (e: Exception) {
                "error: ${e.message}"
            }
            runOnUiThread { status.text = text }
        }
    }

    private fun show(r: Recognition) = runOnUiThread {
        results.text = r.top.joinToString("\n") { "%-12s %.2f".format(it.label, it.score) } +
            "\n%.1f ms (p50 %.1f), %.1f fps".format(r.latencyMs, r.p50Ms ?: r.latencyMs, r.fps ?: 0.0) +
            (r.resetReason?.let { "\nstate reset: $it" } ?: "")
    }

    private fun switchCamera() {
        lensFacing = if (lensFacing == CameraSelector.LENS_FACING_BACK) CameraSelector.LENS_FACING_FRONT else CameraSelector.LENS_FACING_BACK
        analyzer.camera = if (lensFacing == CameraSelector.LENS_FACING_BACK) "back" else "front"  // the Recognizer resets on it
        startCamera()
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val usePreview = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_YUV_420_888)
                .build().also { it.setAnalyzer(worker, analyzer) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.Builder().requireLensFacing(lensFacing).build(), usePreview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { inference?.close() }
        worker.shutdown()
    }
}
