package tfkit.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File

class CoreTest {
    @get:Rule val tmp = TemporaryFolder()

    @Test fun nearestRankPercentilesAreObservations() {
        val s = LatencyStats.of((1..10).map { it.toDouble() }.reversed())
        assertEquals(listOf(5.0, 9.0, 10.0, 1.0, 10.0, 5.5), listOf(s.p50, s.p90, s.p99, s.min, s.max, s.mean))
        assertEquals(10, s.runs)
        assertEquals(7.0, LatencyStats.of(listOf(7.0)).p99, 0.0)
        assertEquals(2.0, LatencyStats.nearestRank(listOf(1.0, 2.0, 3.0, 4.0), 50), 0.0)
    }

    @Test fun latencyWindowKeepsTheLastN() {
        val w = LatencyWindow(3)
        listOf(10.0, 1.0, 2.0, 3.0).forEachIndexed { i, ms -> w.add(ms, i * 100_000_000L) }
        assertEquals(2.0, w.p50()!!, 0.0)
        assertEquals(10.0, w.fps()!!, 1e-9)
    }

    @Test fun topKTruncatesAndSmoothingFollows() {
        val labels = listOf("a", "b", "c", "d")
        assertEquals(listOf("c", "a"), topK(floatArrayOf(0.2f, 0.1f, 0.6f, 0.1f), labels, 2).map { it.label })
        assertEquals(4, topK(floatArrayOf(0f, 0f, 0f, 0f), labels, 10).size)
        assertEquals(0, topK(floatArrayOf(0f, 0f, 0f, 0f), labels, 0).size)
        val smoother = ScoreSmoother(0.5f)
        val first = smoother.update(floatArrayOf(10f, 0f, 0f, 0f))
        val second = smoother.update(floatArrayOf(0f, 10f, 0f, 0f))
        assertEquals(1f, first.sum(), 1e-5f)
        assertEquals((first[0] + ScoreSmoother.softmax(floatArrayOf(0f, 10f, 0f, 0f))[0]) / 2, second[0], 1e-6f)
        assertTrue(second[0] > 0.4f && second[1] > 0.4f)
    }

    @Test fun clipBufferGivesTheLastTFramesOldestFirst() {
        val b = ClipBuffer(3, 2)
        assertNull(b.push(byteArrayOf(1, 1)))
        assertNull(b.push(byteArrayOf(2, 2)))
        assertArrayEquals(byteArrayOf(1, 1, 2, 2, 3, 3), b.push(byteArrayOf(3, 3)))
        assertArrayEquals(byteArrayOf(2, 2, 3, 3, 4, 4), b.push(byteArrayOf(4, 4)))
        b.reset()
        assertNull(b.push(byteArrayOf(5, 5)))
    }

    @Test fun resetRules() {
        val p = ResetPolicy(fps = 10.0)
        assertEquals("new stream", p.check(0, "back"))
        assertNull(p.check(100_000_000, "back"))
        assertNull(p.check(233_000_000, "back"))  // one camera frame late: still the model's rate
        assertTrue(p.check(433_000_000, "back")!!.startsWith("frame interval drifted to 200.0 ms"))
        assertNull(p.check(633_000_000, "back"))  // still slow: reset once, not at every frame
        assertNull(p.check(733_000_000, "back"))
        assertTrue(p.check(933_000_000, "back")!!.startsWith("frame interval drifted"))  // a new drift
        assertTrue(p.check(3_000_000_000, "back")!!.startsWith("paused"))
        assertEquals("camera switched to front", p.check(3_100_000_000, "front"))
    }

    @Test fun samplerWithoutFpsTakesEveryFrame() {
        val s = FrameSampler(null)
        assertTrue((0 until 5).all { s.accept(it * 33_000_000L) })
        val ten = FrameSampler(10.0)
        assertEquals(listOf(0, 3, 6, 9), (0 until 12).filter { ten.accept(it * 1_000_000_000L / 30) })
    }

    @Test fun int8StateStartsAtItsZeroPoint() {
        val t = TensorInfo("s_in", listOf(1, 3), DType.INT8, 0.02f, -128)
        assertArrayEquals(byteArrayOf(-128, -128, -128), Tensors.zeros(t))
        assertArrayEquals(byteArrayOf(0, 0, 0, 0), Tensors.zeros(TensorInfo("f", listOf(1), DType.FLOAT32, 0f, 0)))
        assertEquals(2, Tensors.round(2.5f, -128, 127))  // half to even, as numpy
        assertEquals(-128, Tensors.round(-1000f, -128, 127))
    }

    @Test fun jsonRoundTrips() {
        val text = """{"a": [1, 2.5, -3e-05, null, true], "b": {"c": "d\"e\n"}}"""
        val v = Json.parse(text)
        assertEquals(v, Json.parse(Json.write(v)))
        assertEquals(listOf(1L, 2.5, -3e-05, null, true), (v as Map<*, *>)["a"])
    }

    @Test fun hygieneSnapshotReadsSysfs() {
        val sys = tmp.newFolder("sys")
        fun put(path: String, text: String) = File(sys, path).apply { parentFile.mkdirs(); writeText(text) }
        put("devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil\n")
        put("devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1804800\n")
        put("devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "2016000\n")
        File(sys, "devices/system/cpu/cpu1").mkdirs()
        put("class/thermal/thermal_zone0/temp", "41500\n")
        put("class/thermal/thermal_zone0/type", "cpu-thermal\n")
        val snap = RunnerReport.hygieneSnapshot(sys, null)
        assertEquals(mapOf("cpu0" to "schedutil"), snap["governor"])
        assertEquals(mapOf("cpu0" to 1804800L), snap["freq_khz"])
        assertEquals(mapOf("thermal_zone0 (cpu-thermal)" to 41.5), snap["thermal_c"])
        assertEquals(listOf("cpu1 governor: not readable", "cpu1 frequency: not readable"), snap["unavailable"])
        assertEquals(2.0, RunnerReport.peakRssMb("Name:\tx\nVmHWM:\t    2048 kB\n")!!, 0.0)
    }
}
