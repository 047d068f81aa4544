package tfkit.demo.core

import java.io.File

/**
 * The benchmark mode's one JSON result in tfkit's runner schema ("tfkit.runner/2", the schema
 * runner.py writes and tfkit.bench.parse reads), so the harness reads the app like any board.
 * Fields an app cannot measure are written as the schema's "unknown" values with the reason
 * (energy: null plus "unavailable: ..."), never guessed.
 *
 * Example: `RunnerReport(...).toJson()` is one line for the harness to pull.
 */
data class RunnerReport(
    val modelPath: String,
    val modelSizeBytes: Long,
    val spec: ModelSpec,
    val runtimeVersion: String,
    val threads: Int,
    val warmupRuns: Int,
    val initMs: Double,
    val firstInferenceMs: Double,
    val latency: LatencyStats,
    val peakRssMb: Double?,
    val baselineRssMb: Double?,
    val host: Map<String, Any?>,
    val requestedDelegate: String,
    val delegate: String,
    val delegateNote: String?,
    val hygieneBefore: Map<String, Any?>,
    val hygieneAfter: Map<String, Any?>,
    val stream: StreamBlock?,
) {
    data class StreamBlock(val latency: LatencyStats, val fps: Double?, val warmupFrames: Int, val msPerClip: Double,
                           val requantized: List<String>, val statesCount: Int, val pairedBy: String)

    fun toMap(): Map<String, Any?> = linkedMapOf(
        "schema" to SCHEMA,
        "model_path" to modelPath,
        "model_size_bytes" to modelSizeBytes,
        "runtime" to "litert-android",
        "runtime_version" to runtimeVersion,
        "runtime_fallback" to null,
        "threads" to threads,
        "warmup_runs" to warmupRuns,
        "init_ms" to initMs,
        "first_inference_ms" to firstInferenceMs,
        "latency_ms" to latency.toJson(),
        "peak_rss_mb" to peakRssMb,
        "baseline_rss_mb" to baselineRssMb,
        "inputs" to (listOf(spec.input) + spec.states.map { it.input }).map(::tensorInfo),
        "outputs" to (listOf(spec.logits) + spec.states.map { it.output }).map(::tensorInfo),
        "host" to host,
        "eval" to null,
        "metadata" to spec.metadata,
        "delegate" to delegate,
        "delegate_detail" to linkedMapOf("requested" to requestedDelegate, "library" to null, "note" to delegateNote),
        "cpu_affinity" to null,
        "energy_mj_per_inference" to null,
        "energy_source" to "unavailable: the demo app reads no energy counter",
        "hygiene" to linkedMapOf("before" to hygieneBefore, "after" to hygieneAfter),
        "stream" to stream?.let { s ->
            val fps = s.fps
            linkedMapOf(
                "frames" to s.latency.runs, "latency_ms" to s.latency.toJson(), "fps" to fps,
                "deadline_ms" to fps?.let { 1000.0 / it },
                "missed_deadlines" to fps?.let { f -> s.latency.times.count { it > 1000.0 / f } },
                "clips" to null, "accuracy" to null, "requantized_states" to s.requantized.sorted(),
                "frame_input" to spec.input.name, "logits_output" to spec.logits.name, "states" to s.statesCount,
                "paired_by" to s.pairedBy, "warmup_frames" to s.warmupFrames, "ms_per_clip" to s.msPerClip)
        },
    )

    fun toJson(): String = Json.write(toMap())

    companion object {
        const val SCHEMA = "tfkit.runner/2"

        fun tensorInfo(t: TensorInfo): Map<String, Any?> = linkedMapOf(
            "name" to t.name, "shape" to t.shape, "dtype" to t.dtype.label,
            "quantization" to listOf(t.scale.toDouble(), t.zeroPoint))

        /** The runner's failure line: {"error", "kind", "schema"}. */
        fun error(kind: String, message: String): String =
            Json.write(linkedMapOf("error" to message, "kind" to kind, "schema" to SCHEMA))

        /** Peak resident memory from /proc/self/status's VmHWM (what ru_maxrss reports), in MiB. */
        fun peakRssMb(procStatus: String): Double? =
            procStatus.lineSequence().firstOrNull { it.startsWith("VmHWM:") }
                ?.split(Regex("\\s+"))?.getOrNull(1)?.toDoubleOrNull()?.let { it / 1024.0 }

        /**
         * A hygiene snapshot as board_sysinfo.snapshot writes it: per-CPU governor and frequencies and
         * thermal zones read under `sys` (/sys on a phone), with what could not be read listed.
         */
        fun hygieneSnapshot(sys: File, battery: Map<String, Any?>?): Map<String, Any?> {
            val governor = linkedMapOf<String, Any?>()
            val freq = linkedMapOf<String, Any?>()
            val maxFreq = linkedMapOf<String, Any?>()
            val thermal = linkedMapOf<String, Any?>()
            val unavailable = mutableListOf<String>()
            val cpus = File(sys, "devices/system/cpu").listFiles { f -> f.name.matches(Regex("cpu\\d+")) }
                ?.sortedBy { it.name.removePrefix("cpu").toInt() } ?: emptyList()
            for (cpu in cpus) {
                val dir = File(cpu, "cpufreq")
                fun read(name: String) = File(dir, name).takeIf { it.canRead() }?.readText()?.trim()
                read("scaling_governor")?.let { governor[cpu.name] = it } ?: unavailable.add("${cpu.name} governor: not readable")
                read("scaling_cur_freq")?.toLongOrNull()?.let { freq[cpu.name] = it } ?: unavailable.add("${cpu.name} frequency: not readable")
                read("cpuinfo_max_freq")?.toLongOrNull()?.let { maxFreq[cpu.name] = it }
            }
            if (cpus.isEmpty()) unavailable.add("cpus: ${File(sys, "devices/system/cpu")} lists none")
            val zones = File(sys, "class/thermal").listFiles { f -> f.name.startsWith("thermal_zone") }?.sortedBy { it.name } ?: emptyList()
            for (zone in zones) {
                val milli = File(zone, "temp").takeIf { it.canRead() }?.readText()?.trim()?.toDoubleOrNull()
                val type = File(zone, "type").takeIf { it.canRead() }?.readText()?.trim() ?: "?"
                if (milli == null) unavailable.add("${zone.name}: temp not readable") else thermal["${zone.name} ($type)"] = milli / 1000.0
            }
            return linkedMapOf("governor" to governor, "freq_khz" to freq, "max_freq_khz" to maxFreq, "thermal_c" to thermal,
                "battery" to battery, "unavailable" to unavailable)
        }
    }
}
