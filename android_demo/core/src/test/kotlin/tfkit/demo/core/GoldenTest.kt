package tfkit.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** Kotlin against tfkit itself: the same metadata, the same int8 inputs bit for bit, the same state stream. */
class GoldenTest {
    private val spec by lazy { ModelSpec.load(Golden.bytes("model.tflite"), "model.tflite") }
    private val described by lazy { Golden.json("model.json") }

    private fun tensor(d: Map<*, *>): TensorInfo {
        val q = d["quantization"] as List<*>
        return TensorInfo(d["name"] as String, (d["shape"] as List<*>).ints("shape"), DType.named(d["dtype"] as String)!!,
            (q[0] as Number).toFloat(), (q[1] as Number).toInt(), d["tensor"] as String)
    }

    @Test fun metadataIsTfkits() {
        val meta = described["tfkit"] as Map<*, *>
        assertEquals(meta["labels"], spec.labels)
        assertEquals(meta["normalization"], spec.normalization?.name)
        assertEquals(meta["pixel_scale"], spec.normalization?.scale)
        assertEquals(meta["pixel_offset"], spec.normalization?.offset)
        assertEquals((meta["frames"] as Long).toInt(), spec.frames)
        assertEquals((meta["size"] as Long).toInt(), spec.size)
        assertEquals(meta["fps"], spec.fps)
        assertEquals(Form.STREAM, spec.form)
        assertEquals(meta["precision"], spec.precision)
        assertEquals(meta, spec.metadata)  // the whole entry, field for field
        val stream = meta["stream"] as Map<*, *>
        assertEquals((stream["states"] as List<*>).map { (it as Map<*, *>)["name"] }, spec.states.map { it.name })
        assertEquals(stream["requantize_states"], spec.states.any { it.requantize })
    }

    @Test fun tensorsAreTfkits() {
        val inputs = (described["inputs"] as List<*>).map { tensor(it as Map<*, *>) }.associateBy { it.name }
        val outputs = (described["outputs"] as List<*>).map { tensor(it as Map<*, *>) }.associateBy { it.name }
        assertEquals(inputs["frame"], spec.input)
        assertEquals(outputs["logits"], spec.logits)
        for (s in spec.states) {
            assertEquals(inputs[s.input.name], s.input)
            assertEquals(outputs[s.output.name], s.output)
        }
        assertEquals(inputs.size, spec.states.size + 1)
        assertEquals(outputs.size, spec.states.size + 1)
    }

    private fun input(frame: Golden.Frame, rotation: Int, image: YuvImage = frame.image): ByteArray =
        Preprocess.toInput(Preprocess.resizeCrop(Preprocess.rotate(Preprocess.yuvToRgb(image), rotation), spec.size), spec)

    @Test fun preprocessingIsBitExact() {
        val want = Golden.bytes("inputs.bin")
        val rotated = Golden.bytes("rotated.bin")
        val n = spec.frameBytes
        var differing = 0
        var checked = 0
        Golden.frames.forEachIndexed { i, f ->
            differing += Golden.differing(input(f, 0), want.copyOfRange(i * n, (i + 1) * n))
            differing += Golden.differing(input(f, f.rotation), rotated.copyOfRange(i * n, (i + 1) * n))
            if (i % 10 == 0) differing += Golden.differing(input(f, 0, Golden.semiPlanar(f.image, 16)), want.copyOfRange(i * n, (i + 1) * n))
            checked++
        }
        println("golden parity: $differing differing bytes over $checked real frames (x2 rotations, every 10th also semi-planar)")
        assertTrue("only $checked golden frames", checked >= 100)
        assertEquals(0, differing)
    }

    /** The interpreter's recorded calls, replayed: each step must be given exactly what LiteRT was given. */
    @Test fun streamReplayIsExact() {
        val layout = Golden.json("stream.json")
        val ins = (layout["inputs"] as List<*>).map { it as Map<*, *> }
        val outs = (layout["outputs"] as List<*>).map { it as Map<*, *> }
        val stepBytes = (ins + outs).sumOf { (it["bytes"] as Long).toInt() }
        val record = Golden.bytes("stream.bin")
        val steps = (layout["steps"] as Long).toInt()
        assertEquals(steps * stepBytes, record.size)
        var step = 0
        var differing = 0
        val replay = Inference { given ->
            var at = step * stepBytes
            for (d in ins) {
                val n = (d["bytes"] as Long).toInt()
                differing += Golden.differing(given[d["name"]] ?: ByteArray(0), record.copyOfRange(at, at + n))
                at += n
            }
            assertEquals(ins.map { it["name"] }.toSet(), given.keys)
            val got = outs.associate { d ->
                val n = (d["bytes"] as Long).toInt()
                (d["name"] as String) to record.copyOfRange(at, at + n).also { at += n }
            }
            step++
            got
        }
        val session = StreamSession(spec, replay)
        for (f in Golden.frames.take(steps)) {
            if (f.newStream) session.reset()
            session.step(input(f, 0))
        }
        println("state replay: $differing differing bytes over $step steps of ${spec.states.size} states")
        assertTrue("only $step steps", step >= 300)
        assertEquals(0, differing)
    }

    @Test fun requantizationIsTheRunners() {
        for (case in Golden.json("requant.json")["cases"] as List<*>) {
            case as Map<*, *>
            fun q(key: String, name: String): TensorInfo {
                val sz = case[key] as List<*>
                return TensorInfo(name, listOf(1), DType.INT8, (sz[0] as Number).toFloat(), (sz[1] as Number).toInt())
            }
            val pair = StatePair("s", q("dst", "s_in"), q("src", "s_out"))
            assertTrue(pair.requantize)
            val values = (case["values"] as List<*>).map { (it as Long).toByte() }.toByteArray()
            val expected = (case["expected"] as List<*>).map { (it as Long).toByte() }.toByteArray()
            assertEquals("state ${case["state"]}", 0, Golden.differing(StreamSession.carry(values, pair), expected))
        }
    }

    @Test fun samplingIsTfkits() {
        val golden = Golden.json("sampling.json")
        for (case in golden["cases"] as List<*>) {
            case as Map<*, *>
            val srcFps = case["src_fps"] as Double
            val sampler = FrameSampler(golden["fps"] as Double)
            val picked = (0 until (case["frames"] as Long).toInt()).filter { sampler.accept(Math.round(it * 1e9 / srcFps)) }
            val want = (case["indices"] as List<*>).map { (it as Long).toInt() }
            assertEquals("${case["video"]}", want, picked)
        }
    }

    /** The clip form end to end: camera frames sampled at the model's fps, the last T in the ring buffer, oldest first. */
    @Test fun clipModelGetsTfkitsClips() {
        val clip = ModelSpec.load(Golden.bytes("clip.tflite"), "clip.tflite")
        val described = Golden.json("clip_model.json")
        assertEquals(Form.CLIP, clip.form)
        assertEquals(tensor((described["inputs"] as List<*>).single() as Map<*, *>), clip.input)
        assertEquals(6, clip.frames)
        assertEquals(listOf(1, 6, 32, 32, 3), clip.input.shape)
        val layout = Golden.json("clip.json")
        val calls = layout["calls"] as List<*>
        val inBytes = (layout["input_bytes"] as Long).toInt()
        val outBytes = (layout["output_bytes"] as Long).toInt()
        val record = Golden.bytes("clip.bin")
        var call = 0
        var differing = 0
        val replay = Inference { given ->
            val at = call++ * (inBytes + outBytes)
            differing += Golden.differing(given.getValue(clip.input.name), record.copyOfRange(at, at + inBytes))
            mapOf(clip.logits.name to record.copyOfRange(at + inBytes, at + inBytes + outBytes))
        }
        val recognizer = Recognizer(clip, replay)
        for (video in listOf("realshort.mp4", "cockatoo.mp4")) {
            val frames = Golden.frames.filter { it.record["video"] == video }.take(40)
            val fps = frames.first().record["src_fps"] as Double
            frames.forEachIndexed { i, f -> recognizer.onFrame(f.image, 0, 10_000_000_000L + Math.round(i * 1e9 / fps), video) }
        }
        println("clip replay: $differing differing bytes over $call clips of ${clip.frames} sampled frames")
        assertEquals(calls.size, call)
        assertEquals(0, differing)
    }

    @Test fun aModelWithoutMetadataIsReadByNames() {
        val plain = ModelSpec.load(Golden.bytes("plain.tflite"), "plain.tflite")
        assertEquals(Form.STREAM, plain.form)
        assertEquals(spec.input, plain.input)
        assertEquals(spec.logits, plain.logits)
        assertEquals(spec.states.map { it.name }.sorted(), plain.states.map { it.name }.sorted())
        assertEquals(List(5) { "class $it" }, plain.labels)
        assertTrue(plain.notes.single().contains("no tfkit metadata"))
    }
}
