package tfkit.demo.core

import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/** Broken models fail when they load, with one clear message, never an index error at the first frame. */
class BadInputTest {
    private fun refused(bytes: ByteArray, vararg words: String): String {
        val e = assertThrows(ModelFormatException::class.java) { ModelSpec.load(bytes, "m.tflite") }
        for (w in words) assertTrue("'${e.message}' lacks '$w'", e.message!!.contains(w))
        return e.message!!
    }

    @Test fun truncatedModels() {
        val model = Golden.bytes("model.tflite")
        refused(model.copyOf(0), "not a .tflite model")
        refused(model.copyOf(7), "not a .tflite model")
        // Every cut point in the header, the tables and the metadata: a clear message, never another exception.
        val cuts = (8 until 300) + (300 until model.size - 300 step 37) + (model.size - 300 until model.size)
        for (n in cuts) refused(model.copyOf(n), "m.tflite")
        refused(model.copyOf(model.size / 2), "truncated")
    }

    @Test fun labelsThatDoNotMatchTheOutput() {
        refused(Golden.bytes("bad_labels.tflite"), "3 labels", "'logits' [1, 5] has 5 classes", "tfkit convert --data")
    }

    @Test fun aStateTheModelLacks() {
        refused(Golden.bytes("bad_state.tflite"), "input 'nosuch_in'", "frame_stack_in")
    }

    @Test fun garbageIsNotAModel() {
        refused("TFL3 is just text here, not a flatbuffer".toByteArray(), "m.tflite")
        refused(ByteArray(64) { 0xff.toByte() }, "not a .tflite model")
    }
}
