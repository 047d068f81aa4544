package tfkit.demo.app

import android.content.Context
import java.io.File

/**
 * The app's model folder: <external files>/models/<name>/model.tflite, i.e.
 * /sdcard/Android/data/tfkit.demo/files/models/ (see the README for putting models there).
 */
object ModelFolder {
    fun dir(context: Context): File = File(context.getExternalFilesDir(null), "models")

    fun list(context: Context): List<File> =
        dir(context).walkTopDown().filter { it.isFile && it.extension == "tflite" }.sortedBy { it.path }.toList()

    /** A model named by the harness: a path, or a folder/file name inside the model folder. */
    fun resolve(context: Context, name: String): File =
        File(name).takeIf { it.isAbsolute } ?: File(dir(context), name).let { if (it.isDirectory) File(it, "model.tflite") else it }
}
