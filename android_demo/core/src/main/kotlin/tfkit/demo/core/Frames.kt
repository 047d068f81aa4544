package tfkit.demo.core

/**
 * Picks camera frames at the model's rate, as tfkit.data.clips.sample_indices picks video frames:
 * at each tick k/fps the frame on screen (the last one shown at or before the tick). A frame is taken
 * when the next tick falls before the next frame is due (one camera period on, the last interval).
 * A null fps (no metadata) takes every frame.
 *
 * Example: at 30 fps in and `FrameSampler(10.0)`, frames 0, 3, 6, ... are taken.
 */
class FrameSampler(private val fps: Double?) {
    private var startNs = 0L
    private var lastNs: Long? = null
    private var tick = 0L

    fun reset() { lastNs = null; tick = 0 }

    fun accept(timestampNs: Long): Boolean {
        val last = lastNs
        lastNs = timestampNs
        if (fps == null) return true
        if (last == null) { startNs = timestampNs; tick = 1; return true }
        val period = (timestampNs - last).toDouble()
        if (period <= 0) return false
        val now = (timestampNs - startNs).toDouble()
        var taken = false
        // In frame units (tfkit's EPS = 1e-6): ticks before the next frame belong to this one.
        while ((tick * 1e9 / fps - now) / period + 1e-6 < 1.0) { taken = true; tick++ }
        return taken
    }
}

/**
 * The clip form's last T preprocessed frames, oldest first, taken at the model's fps; the model
 * runs once the buffer is full. Example: `ClipBuffer(8, spec.frameBytes).push(frame)?.let(model::run)`.
 */
class ClipBuffer(val frames: Int, private val frameBytes: Int) {
    private val ring = Array(frames) { ByteArray(frameBytes) }
    private var count = 0L

    fun reset() { count = 0 }

    val full: Boolean get() = count >= frames

    /** Adds a frame; returns the whole clip (T x frame, oldest first) once T frames are in, else null. */
    fun push(frame: ByteArray): ByteArray? {
        require(frame.size == frameBytes) { "a frame has $frameBytes bytes, got ${frame.size}" }
        frame.copyInto(ring[(count % frames).toInt()])
        count++
        return if (full) clip() else null
    }

    fun clip(): ByteArray {
        check(full) { "the clip has $count of $frames frames" }
        val out = ByteArray(frames * frameBytes)
        for (i in 0 until frames) ring[((count + i) % frames).toInt()].copyInto(out, i * frameBytes)
        return out
    }
}
