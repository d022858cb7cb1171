"""Settings for the whole test suite.

Most of the suite's time on CPU is XLA compiling small programs (each test builds its own closures, so
JAX's in-memory cache, keyed by function object, rarely hits). JAX's persistent compilation cache is keyed
by the program itself: one test process loads what another test, another xdist worker, a subprocess (the
four-device checks, the experiment scripts) or an earlier run compiled. It lives in ``<checkout>/.cache/jax``
(git-ignored), so a CI run starts cold and fills it; a second run in the same checkout starts warm.

XLA's CPU compiler is also told to spend less effort: the legacy loop emitters instead of the MLIR fusion
emitters (``--xla_cpu_use_fusion_emitters=false``), LLVM at -O0 and one codegen thread per program. On the
suite's programs (small, many, a while loop or two each) XLA compiles 2 to 5 times faster (a DBN smoother and
MPE: 3.7 s -> 0.7 s; the temporal tests' CPU time halves); what runs, runs slower (the T = 100,000 HMM
filter: about 3x), and results agree up to float32 rounding (every comparison in the suite has a
tolerance, or compares one compiled program with itself).
The HLO that gm emits, and XLA's HLO passes, do not change. ``GM_TEST_XLA_FLAGS=default`` runs with
XLA's default codegen instead.

The settings go into the environment before JAX is imported, so xdist workers and every subprocess that a
test starts inherit them (tests that set ``XLA_FLAGS`` for a subprocess append to it). ``GM_TEST_JAX_CACHE=off``
turns the cache off (to measure compile times); ``GM_TEST_JAX_CACHE=<dir>`` moves it.

Concurrent writers (two xdist workers, the two processes of the multi-host test) are safe without a lock:
an entry is written once under its key, and a reader that meets a half-written (or doubly written) entry
gets a zlib checksum error, which JAX turns into a warning (listed in pytest's summary) and a fresh
compile. (JAX's own lock comes only with its size limit, whose eviction scan costs O(entries) per write.)
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Store programs that took at least this long to compile. A hit still traces and lowers the function and
# costs about a fifth of the compile (key, read, load: 6 to 70 ms measured); below this it is not worth it.
MIN_COMPILE_SECONDS = "0.05"

# Cheaper CPU codegen (see above); a flag the user already set in XLA_FLAGS wins.
FAST_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0",
                      "--xla_cpu_parallel_codegen_split_count=1")

if os.environ.get("GM_TEST_XLA_FLAGS", "fast") != "default":
    _flags = os.environ.get("XLA_FLAGS", "")
    _extra = [f for f in FAST_COMPILE_FLAGS if f.split("=")[0] not in _flags]
    os.environ["XLA_FLAGS"] = " ".join([_flags, *_extra]).strip()

_cache = os.environ.get("GM_TEST_JAX_CACHE", os.path.join(ROOT, ".cache", "jax"))
if _cache != "off":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", MIN_COMPILE_SECONDS)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

    import jax  # noqa: E402  (after the environment: JAX reads it on import)

    # In case a plugin imported JAX before this file ran (harmless when nothing has compiled yet).
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


# ------------------------------------------------------------------------------ xdist scheduling
# The suite runs on two workers (``-n 2``, README; ``--dist loadscope --no-loadscope-reorder`` in
# pyproject.toml). pytest_xdist_make_scheduler below replaces loadscope's work units with ours:
#
# 1. A work unit is a test module, so a module's fixtures (a trained classifier, the subprocess on four
#    simulated devices, parsed networks, compiled functions) are built once, on one worker.
# 2. The modules in SPLIT are too long for one unit and build nothing expensive per module: their tests
#    are units of their own, except that parametrised cases with the same id (one network, say) stay
#    together, since they share that network's cached fixtures.
# 3. Units start in collection order, the long ones first (RUN_FIRST, node-id prefixes): longest-first
#    keeps one worker from finishing minutes before the other.
#
# (pytest-xdist's own ``--dist loadgroup`` does not group on pytest >= 9.2, pytest-xdist issue #1386.)

SPLIT = (
    "tests/bn/test_inference_enumeration.py",
    "tests/bn/test_pgmpy.py",
    "tests/learn/test_hmm.py",
    "tests/temporal/test_hmm.py",
    "tests/temporal/test_dbn.py",
    "tests/temporal/test_model.py",
    "tests/notebooks/test_notebooks.py",  # one kernel per notebook: each notebook is a unit of its own
)

RUN_FIRST = (
    "tests/parallel/test_sharding.py",  # the four-device subprocess and the two-process run
    "tests/bn/test_inference_enumeration.py::test_map_batched_batch_minor_matches_enumeration",
    "tests/experiments/test_vae_mnist.py",
    "tests/experiments/test_gan_mnist.py",
    "tests/experiments/test_translation_experiments.py",
    "tests/learn/test_bayes.py",
    "tests/experiments/",
    "tests/notebooks/",  # a kernel per notebook, 10 to 50 s each
)


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, or for SPLIT modules the test or its parameter id."""
    module, _, name = nodeid.partition("::")
    if module not in SPLIT:
        return module
    if name.endswith("]") and "[" in name:
        return f"{module}[{name[name.index('[') + 1:-1]}]"
    return nodeid


def _rank(item) -> int:
    for i, prefix in enumerate(RUN_FIRST):
        if item.nodeid.startswith(prefix):
            return i
    return len(RUN_FIRST)


def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # stable: collection order within a rank


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist", None) != "loadscope":
        return None  # another --dist: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return WorkUnitScheduling(config, log)
