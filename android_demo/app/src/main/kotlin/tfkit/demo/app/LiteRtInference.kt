package tfkit.demo.app

import android.os.Build
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import tfkit.demo.core.Inference
import tfkit.demo.core.ModelSpec
import java.io.Closeable
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

enum class Accelerator(val label: String) {
    CPU("CPU (XNNPACK)"), GPU("GPU"), NNAPI("NNAPI");

    /** NNAPI is deprecated from Android 15 (API 35): still offered, marked so. */
    fun display(): String = if (this == NNAPI && Build.VERSION.SDK_INT >= 35) "NNAPI (deprecated from Android 15)" else label
}

/**
 * LiteRT's Interpreter behind core's [Inference]: tensors by signature name (by tensor name for a
 * model without signatures). The options, thread count included, are the ones the interpreter is
 * built with. A delegate that fails to load or apply falls back to the CPU and says so in [notice];
 * [ran] is the accelerator that actually runs. One thread owns an instance.
 */
class LiteRtInference private constructor(
    private val interpreter: Interpreter, private val delegate: Delegate?, val ran: Accelerator, val notice: String?,
) : Inference, Closeable {
    private val signature = interpreter.signatureKeys.firstOrNull()
    private val outputs: Map<String, ByteBuffer> = outputNames().associateWith { name ->
        val t = if (signature != null) interpreter.getOutputTensorFromSignature(name, signature) else
            interpreter.getOutputTensor(interpreter.getOutputIndex(name))
        ByteBuffer.allocateDirect(t.numBytes()).order(ByteOrder.nativeOrder())
    }

    private fun outputNames(): List<String> =
        signature?.let { interpreter.getSignatureOutputs(it).toList() }
            ?: List(interpreter.outputTensorCount) { interpreter.getOutputTensor(it).name() }

    override fun run(inputs: Map<String, ByteArray>): Map<String, ByteArray> {
        val feed = inputs.mapValues { (_, bytes) ->
            ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).put(bytes).also { it.rewind() }
        }
        outputs.values.forEach { it.rewind() }
        if (signature != null) {
            interpreter.runSignature(feed, outputs, signature)
        } else {
            val ordered = arrayOfNulls<Any>(feed.size)
            feed.forEach { (name, buffer) -> ordered[interpreter.getInputIndex(name)] = buffer }
            interpreter.runForMultipleInputsOutputs(ordered, outputs.mapKeys { interpreter.getOutputIndex(it.key) })
        }
        return outputs.mapValues { (_, b) -> ByteArray(b.capacity()).also { b.rewind(); b.get(it) } }
    }

    override fun close() {
        interpreter.close()
        (delegate as? Closeable)?.close()
    }

    companion object {
        fun open(model: File, spec: ModelSpec, want: Accelerator, threads: Int): LiteRtInference = try {
            create(model, want, threads, null)
        } catch (e: Exception) {  // the delegate refused the graph (quantized ops, 5-D tensors, a missing driver)
            if (want == Accelerator.CPU) throw e
            create(model, Accelerator.CPU, threads, "${want.display()} failed for ${spec.precision} model: " +
                "${e.message?.lineSequence()?.firstOrNull()}; running on the CPU")
        }

        private fun create(model: File, accelerator: Accelerator, threads: Int, notice: String?): LiteRtInference {
            val options = Interpreter.Options().setNumThreads(threads)  // passed to the Interpreter below, so it applies
            val delegate: Delegate? = when (accelerator) {
                Accelerator.CPU -> { options.setUseXNNPACK(true); null }
                Accelerator.GPU -> GpuDelegate()
                Accelerator.NNAPI -> NnApiDelegate()
            }
            delegate?.let { options.addDelegate(it) }
            return try {
                LiteRtInference(Interpreter(model, options), delegate, accelerator, notice)
            } catch (e: Exception) {
                (delegate as? Closeable)?.close()
                throw e
            }
        }
    }
}
