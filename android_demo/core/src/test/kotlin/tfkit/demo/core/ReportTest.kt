package tfkit.demo.core

import org.junit.Assert.assertEquals
import org.junit.Test
import java.io.File

/**
 * The benchmark mode's JSON on the golden stream (replayed interpreter calls, so its times are of this
 * JVM, not of a phone). With -Dtfkit.report.out=FILE it is written there for the pytest side to read
 * with tfkit.bench.parse, the parser the harness uses.
 */
class ReportTest {
    @Test fun benchmarkWritesTheRunnerSchema() {
        val spec = ModelSpec.load(Golden.bytes("model.tflite"))
        val record = Golden.bytes("stream.bin")
        val layout = Golden.json("stream.json")
        val outs = (layout["outputs"] as List<*>).map { it as Map<*, *> }
        val inBytes = (layout["inputs"] as List<*>).sumOf { ((it as Map<*, *>)["bytes"] as Long).toInt() }
        val stepBytes = inBytes + outs.sumOf { (it["bytes"] as Long).toInt() }
        var step = 0
        val replay = Inference { _ ->
            var at = (step++ % (layout["steps"] as Long).toInt()) * stepBytes + inBytes
            outs.associate { d -> (d["name"] as String) to record.copyOfRange(at, at + (d["bytes"] as Long).toInt()).also { at += it.size } }
        }
        val frames = Golden.bytes("inputs.bin").toList().chunked(spec.frameBytes).take(50).map { it.toByteArray() }
        val result = Benchmark(spec, replay).run(frames, warmup = 5, runs = 40)
        assertEquals(40, result.latency.runs)
        val report = RunnerReport(
            modelPath = "/data/local/tmp/tfkit/model.tflite", modelSizeBytes = 63160, spec = spec, runtimeVersion = "jvm-replay",
            threads = 2, warmupRuns = 5, initMs = 1.5, firstInferenceMs = result.firstMs, latency = result.latency,
            peakRssMb = null, baselineRssMb = null, host = mapOf("system" to "JVM", "machine" to System.getProperty("os.arch")),
            requestedDelegate = "xnnpack", delegate = "xnnpack", delegateNote = null,
            hygieneBefore = RunnerReport.hygieneSnapshot(File("/nonexistent"), null),
            hygieneAfter = RunnerReport.hygieneSnapshot(File("/nonexistent"), null),
            stream = RunnerReport.StreamBlock(result.latency, spec.fps, result.warmup, result.totalMs, result.requantized,
                spec.states.size, "tfkit metadata"))
        val json = Json.parse(report.toJson()) as Map<*, *>
        assertEquals("tfkit.runner/2", json["schema"])
        assertEquals(40, ((json["stream"] as Map<*, *>)["frames"] as Long).toInt())
        System.getProperty("tfkit.report.out")?.let { File(it).writeText(report.toJson() + "\n") }
    }
}

/** The camera path end to end on golden frames: sampled to the model's fps, reset when the camera switches. */
class RecognizerTest {
    @Test fun cameraFramesAreSampledAndResetByTheRules() {
        val spec = ModelSpec.load(Golden.bytes("model.tflite"))
        val layout = Golden.json("stream.json")
        val outs = (layout["outputs"] as List<*>).map { it as Map<*, *> }
        val inBytes = (layout["inputs"] as List<*>).sumOf { ((it as Map<*, *>)["bytes"] as Long).toInt() }
        val stepBytes = inBytes + outs.sumOf { (it["bytes"] as Long).toInt() }
        val record = Golden.bytes("stream.bin")
        var calls = 0
        val replay = Inference { _ ->
            var at = calls++ * stepBytes + inBytes
            outs.associate { d -> (d["name"] as String) to record.copyOfRange(at, at + (d["bytes"] as Long).toInt()).also { at += it.size } }
        }
        val recognizer = Recognizer(spec, replay, topK = 2)
        val frames = Golden.frames.filter { it.record["video"] == "cockatoo.mp4" }.take(40)
        val shown = frames.mapIndexedNotNull { i, f ->  // the camera at 20 fps, the model at 10: every 2nd frame runs
            recognizer.onFrame(f.image, 0, i * 50_000_000L, if (i < 20) "back" else "front")
        }
        assertEquals(20, calls)
        assertEquals(listOf("new stream", "camera switched to front"), shown.mapNotNull { it.resetReason })
        assertEquals(2, shown.first().top.size)
        assertEquals(spec.labels.toSet(), spec.labels.toSet() + shown.flatMap { r -> r.top.map { it.label } })
    }
}
