"""Delegates for runner.py's `--delegate`: how each one is loaded, and which one actually ran.

The loading follows tfkit's delegate providers' load hints (tfkit/delegates/): XNNPACK is the
interpreter's default CPU delegate, opted out of with
`experimental_op_resolver_type=BUILTIN_WITHOUT_DEFAULT_DELEGATES`; GPU, NNAPI and the Edge TPU are
external delegate libraries loaded with `load_delegate(library)`. A delegate that does not load,
or that takes no part of the model, is an error (kind "delegate") naming the library and what to
install: the runner never falls back to the CPU behind the user's back.

What ran is read from the interpreter itself: after `allocate_tensors()` every part of the graph
a delegate took is one DELEGATE node in its execution plan (`_get_ops_details()`).
Stdlib only, Python 3.8 grammar; never imports tfkit.

Example:
    >>> kwargs, detail = interpreter_options(interpreter_module, "none", None)
    >>> interpreter = interpreter_module.Interpreter(model_path="m.tflite", **kwargs)
    >>> interpreter.allocate_tensors(); which_ran(interpreter, detail)
    'none'
"""
DELEGATE_CHOICES = ("default", "none", "xnnpack", "gpu", "nnapi", "edgetpu")
# External delegates: the library to load when --delegate-library is not given (None: no standard
# name, the user must give one), and what to install where it is missing.
EXTERNAL = {
    "edgetpu": ("libedgetpu.so.1", ("install the Edge TPU runtime: apt-get install libedgetpu1-std (Coral apt "
                                    "source), and run a model compiled by edgetpu_compiler")),
    "gpu": ("libtensorflowlite_gpu_delegate.so", (
        "build libtensorflowlite_gpu_delegate.so (bazel build "
        "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so) and pass --delegate-library, or "
        "benchmark on a phone (tfkit bench --device adb:SERIAL) where the LiteRT AAR brings it")),
    "nnapi": (None, ("NNAPI is Android only: benchmark on the phone (tfkit bench --device adb:SERIAL), or pass "
                     "--delegate-library with an NNAPI external delegate built for this device")),
}


class DelegateError(Exception):
    """A delegate that could not be loaded or applied; runner.py reports it as kind "delegate"."""

    kind = "delegate"

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message


def _words(error):
    return f"{type(error).__name__}: {error}"


def interpreter_options(module, requested, library):
    """Interpreter(...) keyword arguments for `requested`, and the result's delegate_detail so far.
    `module` is the interpreter module (ai_edge_litert.interpreter or tflite_runtime.interpreter)."""
    if requested not in DELEGATE_CHOICES:
        raise DelegateError(f"unknown delegate {requested!r}; choose one of {', '.join(DELEGATE_CHOICES)}")
    detail = {"requested": requested, "library": None, "note": None, "partitions": None}
    if requested in ("default", "xnnpack"):
        if library:
            raise DelegateError(f"--delegate-library is for external delegates ({', '.join(sorted(EXTERNAL))}); "
                                f"{requested} is built into the interpreter")
        return {}, detail
    if requested == "none":
        resolver = getattr(getattr(module, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
        if resolver is None:
            raise DelegateError(f"{module.__name__} has no OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, so "
                                "its default delegate cannot be turned off; upgrade the runtime")
        return {"experimental_op_resolver_type": resolver}, detail
    default_library, install = EXTERNAL[requested]
    library = library or default_library
    if library is None:
        raise DelegateError(f"the {requested} delegate needs --delegate-library PATH: {install}")
    detail["library"] = library
    try:
        delegate = module.load_delegate(library)
    except Exception as e:  # noqa: BLE001 - load_delegate raises ValueError/OSError/RuntimeError by runtime
        raise DelegateError(f"could not load the {requested} delegate from {library!r} ({_words(e)}); {install}")
    return {"experimental_delegates": [delegate]}, detail


def delegated_partitions(interpreter):
    """How many parts of the graph a delegate took (DELEGATE nodes in the execution plan), or None
    where the runtime does not expose its plan."""
    try:
        return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
    except Exception:  # noqa: BLE001 - a private API: absent or different in some runtime versions
        return None


def which_ran(interpreter, detail):
    """The delegate that actually runs in `interpreter` (allocated), filling detail's partitions and
    note; raises DelegateError where the requested delegate took no part of the model."""
    requested = detail["requested"]
    partitions = delegated_partitions(interpreter)
    detail["partitions"] = partitions
    if partitions is None:
        detail["note"] = "the runtime does not expose its execution plan: the delegate is the one requested"
        return "none" if requested == "none" else ("xnnpack" if requested == "default" else requested)
    if requested == "none":
        if partitions:
            raise DelegateError(f"--delegate none still left {partitions} delegated part(s) in the execution plan")
        return "none"
    if requested == "default":
        # The interpreter's own CPU path: XNNPACK where it takes part of the graph, else builtin kernels.
        detail["note"] = (f"the runtime's default delegate (XNNPACK) took {partitions} part(s) of the graph"
                          if partitions else "the runtime applied no delegate: builtin kernels only")
        return "xnnpack" if partitions else "none"
    if not partitions:
        what = "XNNPACK" if requested == "xnnpack" else f"the {requested} delegate ({detail['library']})"
        hint = " (compile the model with edgetpu_compiler first)" if requested == "edgetpu" else ""
        raise DelegateError(f"{what} loaded but took no part of this model{hint}; its ops would all run on the "
                            "CPU's builtin kernels. Use --delegate none or default to time that.")
    detail["note"] = f"{partitions} delegated part(s) in the execution plan"
    return requested
