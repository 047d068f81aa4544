package tfkit.demo.core

/**
 * A small JSON reader and writer, so `core` needs no dependency: objects are `Map<String, Any?>`,
 * arrays `List<Any?>`, integers `Long`, other numbers `Double`.
 *
 * Example: `Json.parse("""{"a": [1, 2.5]}""")` is `mapOf("a" to listOf(1L, 2.5))`.
 */
object Json {
    fun parse(text: String): Any? {
        val parser = Parser(text)
        val value = parser.value()
        parser.skipSpace()
        if (parser.pos != text.length) parser.fail("trailing characters")
        return value
    }

    /** One line of JSON; non-finite numbers are refused (the runner's schema is strict). */
    fun write(value: Any?): String = StringBuilder().also { write(value, it) }.toString()

    private fun write(value: Any?, out: StringBuilder) {
        when (value) {
            null -> out.append("null")
            is Boolean, is Int, is Long -> out.append(value.toString())
            is Float -> write(value.toDouble(), out)
            is Double -> {
                require(value.isFinite()) { "JSON has no $value" }
                out.append(if (value == Math.rint(value) && Math.abs(value) < 1e15) "${value.toLong()}.0" else value.toString())
            }
            is String -> quote(value, out)
            is Map<*, *> -> {
                out.append('{')
                value.entries.forEachIndexed { i, (k, v) ->
                    if (i > 0) out.append(", ")
                    quote(k.toString(), out); out.append(": "); write(v, out)
                }
                out.append('}')
            }
            is Iterable<*> -> {
                out.append('[')
                value.forEachIndexed { i, v -> if (i > 0) out.append(", "); write(v, out) }
                out.append(']')
            }
            else -> throw IllegalArgumentException("cannot write ${value::class.simpleName} as JSON")
        }
    }

    private fun quote(s: String, out: StringBuilder) {
        out.append('"')
        for (c in s) when {
            c == '"' -> out.append("\\\"")
            c == '\\' -> out.append("\\\\")
            c == '\n' -> out.append("\\n")
            c < ' ' -> out.append(String.format("\\u%04x", c.code))
            else -> out.append(c)
        }
        out.append('"')
    }

    private class Parser(val s: String) {
        var pos = 0

        fun fail(what: String): Nothing = throw IllegalArgumentException("bad JSON at character $pos: $what")

        fun skipSpace() { while (pos < s.length && s[pos] in " \t\r\n") pos++ }

        fun value(): Any? {
            skipSpace()
            if (pos >= s.length) fail("unexpected end")
            return when (s[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, pos)) fail("unexpected '${s[pos]}'")
            pos += word.length
            return v
        }

        private fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (pos < s.length && s[pos] == '}') { pos++; return map }
            while (true) {
                skipSpace()
                if (pos >= s.length || s[pos] != '"') fail("expected a key")
                val key = string()
                skipSpace()
                if (pos >= s.length || s[pos++] != ':') fail("expected ':'")
                map[key] = value()
                skipSpace()
                if (pos >= s.length) fail("unexpected end")
                when (s[pos++]) { ',' -> continue; '}' -> return map; else -> fail("expected ',' or '}'") }
            }
        }

        private fun array(): List<Any?> {
            val list = ArrayList<Any?>()
            pos++
            skipSpace()
            if (pos < s.length && s[pos] == ']') { pos++; return list }
            while (true) {
                list.add(value())
                skipSpace()
                if (pos >= s.length) fail("unexpected end")
                when (s[pos++]) { ',' -> continue; ']' -> return list; else -> fail("expected ',' or ']'") }
            }
        }

        private fun string(): String {
            val out = StringBuilder()
            pos++
            while (true) {
                if (pos >= s.length) fail("unterminated string")
                val c = s[pos++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        if (pos >= s.length) fail("unterminated escape")
                        when (val e = s[pos++]) {
                            'n' -> out.append('\n'); 't' -> out.append('\t'); 'r' -> out.append('\r')
                            'b' -> out.append('\b'); 'f' -> out.append('\u000c')
                            'u' -> {
                                if (pos + 4 > s.length) fail("short \\u escape")
                                out.append(s.substring(pos, pos + 4).toInt(16).toChar()); pos += 4
                            }
                            else -> out.append(e)
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Any {
            val start = pos
            while (pos < s.length && (s[pos].isDigit() || s[pos] in "+-.eE")) pos++
            val text = s.substring(start, pos)
            if (text.isEmpty()) fail("unexpected '${s[pos]}'")
            return if (text.any { it in ".eE" }) text.toDoubleOrNull() ?: fail("bad number $text")
            else text.toLongOrNull() ?: fail("bad number $text")
        }
    }
}

/** Typed reads of parsed JSON that name the field on failure. */
internal fun Map<*, *>.field(key: String, where: String): Any? =
    if (containsKey(key)) get(key) else throw ModelFormatException("$where lacks field '$key'; reconvert the model with tfkit")

internal fun Map<*, *>.obj(key: String, where: String): Map<*, *> =
    field(key, where) as? Map<*, *> ?: throw ModelFormatException("$where: '$key' must be an object")

internal fun Map<*, *>.str(key: String, where: String): String =
    field(key, where) as? String ?: throw ModelFormatException("$where: '$key' must be a string")

internal fun Map<*, *>.num(key: String, where: String): Double? = when (val v = field(key, where)) {
    null -> null
    is Number -> v.toDouble()
    else -> throw ModelFormatException("$where: '$key' must be a number or null, got $v")
}

internal fun Map<*, *>.list(key: String, where: String): List<*> =
    field(key, where) as? List<*> ?: throw ModelFormatException("$where: '$key' must be a list")

internal fun List<*>.ints(where: String): List<Int> =
    map { (it as? Number)?.toInt() ?: throw ModelFormatException("$where must hold integers, got $it") }
