// Pure Kotlin, no Android: tested on a plain JVM (`./gradlew :core:test`, or tfkit's
// `python -m pytest -q tests -k android`, which regenerates the golden files from tfkit first).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin { jvmToolchain(17) }

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // -Ptfkit.golden=DIR runs the golden tests on files written by tools/write_android_goldens.py.
    project.findProperty("tfkit.golden")?.let { systemProperty("tfkit.golden", it) }
}
