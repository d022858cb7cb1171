"""One benchmark report across the library: gm against pgmpy, hmmlearn and dynamax; training steps/s of the
deep models; scaling of a sharded batched computation from 1 to 4 host devices; on a GPU, achieved FLOP/s
and bandwidth against the device's measured peaks.

    python -m experiments.bench_all [--quick] [--out runs/bench_all] [--sections bn,hmm,deep,scaling,gpu]

Sections (each reuses its own benchmark's functions, so the numbers are the ones those scripts report):

* ``bn``: all posterior marginals of B evidence sets per network, gm (one compiled ``jit(vmap)``) against
  pgmpy's variable elimination (`experiments.bench_bn.run_network`), with the largest difference.
* ``hmm``: smoothing, Viterbi and one EM iteration for B categorical sequences, gm against dynamax and
  hmmlearn (`experiments.bench_hmm.bench_batch`).
* ``deep``: training steps per second of the MNIST VAE (`gm.deep.vae.train_step`, jitted, after
  compilation); a GAN row when ``gm.deep.gan`` is importable (otherwise a note says it was skipped).
* ``scaling``: `gm.parallel.sharded_marginals` (alarm) and `gm.parallel.sharded_smoother` in subprocesses
  that see 1, 2 and 4 simulated host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``).
  Simulated devices share the machine's cores: the speed-up is bounded by the core count, and on a
  loaded machine by what is free; the column shows what sharding costs or gains here, not on N chips.
* ``gpu`` (only when ``jax.default_backend() == "gpu"``, or with ``--peaks`` on any backend): peak FLOP/s
  (a large matmul) and bandwidth (a large copy) measured on the device, and for the BN marginals and the
  VAE step the achieved FLOP/s and bytes/s from XLA's cost analysis of the compiled function divided by
  its measured time, as fractions of those peaks.

Writes ``bench_all.md`` (one markdown report, the tables the README includes) and ``results.json``.
``--quick`` takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from experiments._common import median_seconds, write_results
from gm import parallel

SECTIONS = ("bn", "hmm", "deep", "scaling", "gpu")


def quick_config() -> dict:
    return dict(networks=("asia", "alarm", "child"), bn_batch=200, bn_repeats=3, pgmpy_sets=3,
                hmm_ks=(4, 16), hmm_batch=(64, 200), hmm_repeats=3, hmmlearn_repeats=1,
                vae=dict(latent_dim=8, hidden=(128,)), vae_batch=100, vae_steps=20,
                scaling_devices=(1, 2, 4), scaling_bn_batch=512, scaling_hmm=(128, 100, 8), scaling_repeats=3,
                peak_matmul=2048, peak_copy_mb=256)


def full_config() -> dict:
    return dict(networks=("asia", "alarm", "child", "insurance", "hepar2", "win95pts", "hailfinder", "water"),
                bn_batch=1000, bn_repeats=5, pgmpy_sets=20,
                hmm_ks=(4, 16, 64), hmm_batch=(256, 1000), hmm_repeats=5, hmmlearn_repeats=3,
                vae=dict(latent_dim=32, hidden=(512, 256)), vae_batch=100, vae_steps=200,
                scaling_devices=(1, 2, 4), scaling_bn_batch=8192, scaling_hmm=(1024, 1000, 16), scaling_repeats=5,
                peak_matmul=8192, peak_copy_mb=2048)

def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- BN


def bench_bn_section(cfg) -> dict:
    from experiments import bench_bn

    rows = [bench_bn.run_network(name, cfg["bn_batch"], cfg["bn_repeats"], cfg["pgmpy_sets"])
            for name in cfg["networks"]]
    return {"rows": rows, "markdown": bench_bn.table(rows)}


# --------------------------------------------------------------------------------------------- HMM


def bench_hmm_section(cfg) -> dict:
    from experiments import bench_hmm

    B, T = cfg["hmm_batch"]
    libs = ("gm", "dynamax", "hmmlearn-scaling")
    rows, raw, agreement = [], {}, {}
    for K in cfg["hmm_ks"]:
        res, agree = bench_hmm.bench_batch(K, B, T, 8, cfg["hmm_repeats"], cfg["hmmlearn_repeats"],
                                           with_log_impl=False)
        raw[K], agreement[K] = res, agree
        for task in ("smoother", "viterbi", "em step"):
            times = {lib: res[f"{lib} {task}"]["median_s"] for lib in libs}
            rows.append([K, task] + [f"{times[lib] * 1e3:.2f}" for lib in libs]
                        + [f"{times[lib] / times['gm']:.1f}x" for lib in libs[1:]])
    header = ["K", "task", "gm ms", "dynamax ms", "hmmlearn ms", "gm speed-up vs dynamax", "vs hmmlearn"]
    text = (f"B = {B} sequences of T = {T} steps, categorical emissions (8 symbols); median times.\n\n"
            + _table(header, rows) + "\n\nagreement: " + json.dumps(agreement))
    return {"batch": B, "steps": T, "results": raw, "agreement": agreement, "markdown": text}


# ------------------------------------------------------------------------------------- deep models


def _steps_per_second(step, config, state, batches, keys, n_steps):
    state, _ = step(keys[0], config, state, batches[0])  # compile
    jax.block_until_ready(state)
    start = time.perf_counter()
    for i in range(n_steps):
        state, metrics = step(keys[i], config, state, batches[i % len(batches)])
    jax.block_until_ready((state, metrics))
    return n_steps / (time.perf_counter() - start), metrics


def bench_vae(cfg) -> dict:
    from gm import data
    from gm.deep import vae

    images = jnp.asarray(data.mnist().train.images)
    bs, n_steps = cfg["vae_batch"], cfg["vae_steps"]
    config = vae.VAEConfig(**cfg["vae"])
    state = vae.create_state(jax.random.key(0), config, {"image": images[:bs]})
    batches = [{"image": images[i * bs:(i + 1) * bs]} for i in range(min(10, images.shape[0] // bs))]
    keys = jax.random.split(jax.random.key(1), n_steps)
    rate, metrics = _steps_per_second(vae.train_step, config, state, batches, keys, n_steps)
    rows = [{"model": "VAE (MLP, MNIST 28x28)", "config": f"latent {config.latent_dim}, hidden {config.hidden}",
             "batch": bs, "devices": 1, "steps_per_s": rate, "examples_per_s": rate * bs,
             "final_loss": float(metrics["loss"])}]
    n_dev = jax.device_count()
    if n_dev > 1 and bs % n_dev == 0:
        step = parallel.data_parallel_train_step(vae.train_step, parallel.batch_mesh(), batch_argnums=3)
        rate, metrics = _steps_per_second(step, config, state, batches, keys, n_steps)
        rows.append({**rows[0], "devices": n_dev, "steps_per_s": rate, "examples_per_s": rate * bs,
                     "final_loss": float(metrics["loss"])})
    return {"rows": rows, "flops_fn": (vae.train_step, (keys[0], config, state, batches[0]))}


def bench_gan(cfg) -> dict:
    """Steps/s of ``gm.deep.gan.train_step`` (pluggable: skipped with a note until the module exists).

    The API it times: ``gan.GANConfig(...)``, ``gan.create_state(key, config, example_batch)``,
    ``gan.train_step(key, config, state, batch) -> (state, metrics)``.
    """
    try:
        from gm.deep import gan
    except ImportError as e:
        return {"rows": [], "note": f"GAN skipped: gm.deep.gan is not importable ({e})"}
    try:
        from gm import data

        images = jnp.asarray(data.mnist().train.images)
        bs, n_steps = cfg["vae_batch"], cfg["vae_steps"]
        config = gan.GANConfig()
        state = gan.create_state(jax.random.key(0), config, {"image": images[:bs]})
        batches = [{"image": images[i * bs:(i + 1) * bs]} for i in range(10)]
        keys = jax.random.split(jax.random.key(1), n_steps)
        rate, _ = _steps_per_second(gan.train_step, config, state, batches, keys, n_steps)
    except Exception as e:  # the API differs from the expected one: report, do not fail the whole run
        return {"rows": [], "note": f"GAN skipped: {type(e).__name__}: {e}"}
    return {"rows": [{"model": "GAN (MNIST 28x28)", "config": "GANConfig()", "batch": bs, "devices": 1,
                      "steps_per_s": rate, "examples_per_s": rate * bs, "final_loss": float("nan")}]}


def bench_deep_section(cfg) -> dict:
    v = bench_vae(cfg)
    g = bench_gan(cfg)
    rows = v["rows"] + g["rows"]
    table = _table(["model", "config", "global batch", "devices", "steps/s", "examples/s"],
                   [[r["model"], r["config"], r["batch"], r["devices"], f"{r['steps_per_s']:.1f}",
                     f"{r['examples_per_s']:,.0f}"] for r in rows])
    notes = [g["note"]] if "note" in g else []
    return {"rows": rows, "notes": notes, "markdown": "\n\n".join([table] + notes), "_flops_fn": v["flops_fn"]}


# ----------------------------------------------------------------------------------------- scaling


def scaling_worker(cfg) -> dict:
    """Runs in a subprocess with N simulated devices: sharded BN marginals and HMM smoothing throughput."""
    from experiments.bench_bn import evidence_sets
    from gm.data.networks import load_network

    mesh = parallel.batch_mesh()
    net = load_network("alarm")
    # inputs placed once, as a pipeline would deliver them; the timed calls find them already sharded
    evs, n_sets = parallel.shard_batch(evidence_sets(net, jax.random.key(0), cfg["scaling_bn_batch"]), mesh)
    net = parallel.replicate(net, mesh)
    bn_s = median_seconds(lambda: parallel.sharded_marginals(net, evs, mesh=mesh), cfg["scaling_repeats"])
    B, T, K = cfg["scaling_hmm"]
    rng = np.random.default_rng(0)
    pi = jnp.asarray(rng.dirichlet(np.ones(K)), jnp.float32)
    A = jnp.asarray(rng.dirichlet(np.ones(K), size=K), jnp.float32)
    log_liks, _ = parallel.shard_batch(np.log(rng.dirichlet(np.ones(K), size=(B, T))).astype(np.float32), mesh)
    pi, A = parallel.replicate((pi, A), mesh)
    hmm_s = median_seconds(lambda: parallel.sharded_smoother(pi, A, log_liks, mesh=mesh), cfg["scaling_repeats"])
    return {"devices": mesh.size, "bn_batch": n_sets, "bn_sets_per_s": n_sets / bn_s,
            "hmm_batch": B, "hmm_steps": T, "hmm_states": K, "hmm_sequences_per_s": B / hmm_s}


def _worker_env(devices: int) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def bench_scaling_section(cfg, quick: bool) -> dict:
    rows = []
    for devices in cfg["scaling_devices"]:
        cmd = [sys.executable, "-m", "experiments.bench_all", "--scaling-worker"] + (["--quick"] if quick else [])
        proc = subprocess.run(cmd, env=_worker_env(devices), capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"scaling worker with {devices} devices failed:\n{proc.stderr[-2000:]}")
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
        rows.append(json.loads(line[len("RESULT "):]))
    base = rows[0]
    table = _table(
        ["host devices", f"BN marginals (alarm, B={base['bn_batch']}) sets/s", "speed-up",
         f"HMM smoother (B={base['hmm_batch']}, T={base['hmm_steps']}, K={base['hmm_states']}) seqs/s", "speed-up"],
        [[r["devices"], f"{r['bn_sets_per_s']:,.0f}", f"{r['bn_sets_per_s'] / base['bn_sets_per_s']:.2f}x",
          f"{r['hmm_sequences_per_s']:,.0f}", f"{r['hmm_sequences_per_s'] / base['hmm_sequences_per_s']:.2f}x"]
         for r in rows])
    note = (f"Simulated CPU devices share this machine's {os.cpu_count()} cores (load average at the start "
            f"{os.getloadavg()[0]:.1f}): the speed-up is bounded by the free cores, not by the device count.")
    return {"rows": rows, "markdown": table + "\n\n" + note}


# ------------------------------------------------------------------------------------------ GPU


def _cost(fn, args) -> dict:
    compiled = jax.jit(fn).lower(*args).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returned one dict per computation
        cost = cost[0] if cost else {}
    cost = cost or {}
    return {"flops": float(cost.get("flops", float("nan"))), "bytes": float(cost.get("bytes accessed", float("nan"))),
            "compiled": compiled}


def measure_peaks(cfg) -> dict:
    """Peak FLOP/s (n x n float32 and bfloat16 matmuls) and bandwidth (read + write of a large array)."""
    n = cfg["peak_matmul"]
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        a = jnp.ones((n, n), dtype)
        mm = jax.jit(lambda x, y: x @ y)
        seconds = median_seconds(lambda: mm(a, a), 5)
        out[f"matmul_{jnp.dtype(dtype).name}_flops_per_s"] = 2 * n**3 / seconds
    x = jnp.ones((cfg["peak_copy_mb"] * 2**20 // 4,), jnp.float32)
    copy = jax.jit(lambda v: v * 2.0)
    seconds = median_seconds(lambda: copy(x), 5)
    out["copy_bytes_per_s"] = 2 * x.nbytes / seconds
    return out


def bench_gpu_section(cfg, flops_fns: dict) -> dict:
    peaks = measure_peaks(cfg)
    peak_flops = max(v for k, v in peaks.items() if k.startswith("matmul"))
    rows = []
    for name, (fn, args) in flops_fns.items():
        cost = _cost(fn, args)
        compiled = cost["compiled"]
        seconds = median_seconds(lambda: compiled(*args), 5)
        flops_s, bytes_s = cost["flops"] / seconds, cost["bytes"] / seconds
        rows.append({"computation": name, "seconds": seconds, "flops": cost["flops"], "bytes": cost["bytes"],
                     "flops_per_s": flops_s, "bytes_per_s": bytes_s,
                     "fraction_of_peak_flops": flops_s / peak_flops,
                     "fraction_of_peak_bandwidth": bytes_s / peaks["copy_bytes_per_s"]})
    table = _table(["computation", "ms", "GFLOP/s", "% of peak FLOP/s", "GB/s", "% of peak bandwidth"],
                   [[r["computation"], f"{r['seconds'] * 1e3:.2f}", f"{r['flops_per_s'] / 1e9:,.1f}",
                     f"{100 * r['fraction_of_peak_flops']:.1f}", f"{r['bytes_per_s'] / 1e9:,.1f}",
                     f"{100 * r['fraction_of_peak_bandwidth']:.1f}"] for r in rows])
    head = (f"Device {jax.devices()[0].device_kind}: measured peaks "
            + ", ".join(f"{k} {v / 1e9:,.1f} G" for k, v in peaks.items())
            + " (FLOP/s from an n x n matmul, bytes/s from reading and writing a large array). Achieved: "
              "XLA's cost analysis (flops, bytes accessed) of the compiled function over its median time.")
    return {"peaks": peaks, "rows": rows, "markdown": head + "\n\n" + table}


def _bn_flops_fn(cfg):
    from experiments.bench_bn import evidence_sets
    from gm import bn
    from gm.data.networks import load_network

    net = load_network("alarm")
    evs = jnp.asarray(evidence_sets(net, jax.random.key(0), cfg["bn_batch"]))
    return (lambda n, e: bn.map_batched(bn.marginals, n, e)), (net, evs)


# -------------------------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes on 2 CPU cores")
    parser.add_argument("--out", default="runs/bench_all")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--networks", default=None, help="BN networks (comma-separated), overriding the config")
    parser.add_argument("--hmm-ks", default=None, help="HMM state counts (comma-separated), overriding the config")
    parser.add_argument("--vae-steps", type=int, default=None, help="timed VAE training steps")
    parser.add_argument("--scaling-devices", default=None, help="device counts for the scaling section, e.g. 1,2,4")
    parser.add_argument("--peaks", action="store_true", help="run the gpu section on any backend")
    parser.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    parallel.add_distributed_args(parser)
    args = parser.parse_args(argv)
    parallel.initialize_from_args(args)
    cfg = quick_config() if args.quick else full_config()
    if args.networks:
        cfg["networks"] = tuple(args.networks.split(","))
    if args.hmm_ks:
        cfg["hmm_ks"] = tuple(int(k) for k in args.hmm_ks.split(","))
    if args.vae_steps:
        cfg["vae_steps"] = args.vae_steps
    if args.scaling_devices:
        cfg["scaling_devices"] = tuple(int(d) for d in args.scaling_devices.split(","))
    if args.scaling_worker:
        print("RESULT " + json.dumps(scaling_worker(cfg)), flush=True)
        return {}
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            parser.error(f"--sections: unknown section {s!r} (choose from {SECTIONS})")
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.makedirs(args.out, exist_ok=True)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        def tqdm(x, **_):
            return x

    start = time.time()
    results = {"config": {k: v for k, v in cfg.items()}, "quick": args.quick, "backend": jax.default_backend(),
               "devices": [str(d) for d in jax.devices()], "cpu_count": os.cpu_count(),
               "load_average_start": os.getloadavg(), "sections": {}, "seconds": {}}
    titles = {"bn": "Bayesian networks: all marginals for B evidence sets, gm vs pgmpy",
              "hmm": "HMMs: gm vs dynamax and hmmlearn",
              "deep": "Deep generative models: training steps per second",
              "scaling": "Scaling: a sharded batched computation on 1 to 4 host devices",
              "gpu": "GPU: achieved FLOP/s and bandwidth against measured peaks"}
    flops_fns = {}
    for section in tqdm(sections, desc="sections"):
        t0 = time.time()
        if section == "bn":
            out = bench_bn_section(cfg)
        elif section == "hmm":
            out = bench_hmm_section(cfg)
        elif section == "deep":
            out = bench_deep_section(cfg)
            flops_fns["VAE train step"] = out.pop("_flops_fn")
        elif section == "scaling":
            out = bench_scaling_section(cfg, args.quick)
        else:
            if jax.default_backend() != "gpu" and not args.peaks:
                out = {"markdown": f"Skipped: the backend is {jax.default_backend()}, not gpu (use --peaks to "
                                   "measure anyway)."}
            else:
                flops_fns = {"BN marginals (alarm)": _bn_flops_fn(cfg), **flops_fns}
                out = bench_gpu_section(cfg, flops_fns)
        results["sections"][section] = out
        results["seconds"][section] = round(time.time() - t0, 1)
        _write(args.out, results, titles)
    results["seconds"]["total"] = round(time.time() - start, 1)
    results["load_average_end"] = os.getloadavg()
    report = _write(args.out, results, titles)
    print(report)
    return results


def _write(out: str, results: dict, titles: dict) -> str:
    lines = [f"# gm benchmarks ({'quick' if results['quick'] else 'full'}; backend {results['backend']}, "
             f"{len(results['devices'])} device(s), {results['cpu_count']} CPU cores, load average "
             f"{results['load_average_start'][0]:.1f} at the start)", ""]
    for section, res in results["sections"].items():
        lines += [f"## {titles[section]}", "", res["markdown"], "",
                  f"_section time: {results['seconds'].get(section, 0):.0f} s_", ""]
    report = "\n".join(lines)
    with open(os.path.join(out, "bench_all.md"), "w") as f:
        f.write(report)
    write_results(os.path.join(out, "results.json"), results)
    return report


if __name__ == "__main__":
    main()
