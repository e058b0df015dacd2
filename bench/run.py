"""Settle a city-year fast — the benchmark (性能基准). See bench/README.md.

    .venv/bin/python bench/run.py                      # 1,000,000 claims, five cities, references
    .venv/bin/python bench/run.py --quick              # 100,000 claims, fewer repeats (a smoke run)
    .venv/bin/python bench/run.py --cities none --big  # only the 10,000,000-claim Zibo run
    .venv/bin/python bench/run.py --cities none --api  # only the API load test (wrk)

Every measurement runs in a child process of its own (bench/worker.py), so the peak memory of a
city is that city's. Synthetic data comes from `medpay synth` and is cached in bench/.data/.
Prints tables and writes bench/results.json (bench/results-quick.json with --quick); a section
not run this time is kept from the previous file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / ".data"
PY = sys.executable
CITIES = ("zibo", "jingdezhen", "hangzhou", "tianjin", "panzhihua")
REFERENCE_CITIES = ("zibo", "jingdezhen")
LUA = BENCH / "wrk_evaluate.lua"
API_PATH = "/v1/cities/tianjin/evaluate"


def medpay() -> list[str]:
    """The `medpay` command next to this Python (repo-relative: children run in the repo root)."""
    exe = Path(PY).parent / "medpay"
    return [rel(exe)] if exe.exists() else [PY, "-m", "engine.cli"]


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---- contention: this machine is shared; measure what others use, wait for quiet --------------------
HZ = os.sysconf("SC_CLK_TCK")
QUIET = {"max_wait_s": 120.0, "threshold_cores": 0.3}


def _cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / HZ


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Contention:
    """Cores used by other processes while the block runs: machine busy time − our children's CPU."""

    def __enter__(self):
        self.t, self.busy, self.mine = time.perf_counter(), _cpu_busy_s(), _children_cpu_s()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t
        others = (_cpu_busy_s() - self.busy) - (_children_cpu_s() - self.mine)
        self.other_cores = round(max(0.0, others) / wall, 2) if wall > 0 else 0.0
        return False


def host_probe() -> float:
    """Seconds for a fixed Python + numpy workload (best of 3): how fast this host is right now.
    On a shared virtual machine the same code runs faster or slower from hour to hour, even when
    no other process of this machine is busy; compare figures of runs with similar probes."""
    import numpy as np
    x = np.random.default_rng(1).random(1_000_000)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        acc = 0
        for i in range(300_000):
            acc += i * i % 7
        np.sort(x)
        float((np.sqrt(x) * 2.5 + x).sum())
        best = min(best, time.perf_counter() - t)
    return round(best, 4)


def wait_quiet() -> dict:
    """Wait (at most QUIET max_wait_s) until other processes use less than threshold_cores,
    sampled over one second; returns what was seen."""
    started = time.perf_counter()
    while True:
        b, t = _cpu_busy_s(), time.perf_counter()
        time.sleep(1.0)
        cores = (_cpu_busy_s() - b) / (time.perf_counter() - t)
        waited = time.perf_counter() - started
        if cores < QUIET["threshold_cores"] or waited >= QUIET["max_wait_s"]:
            return {"busy_cores_before": round(cores, 2), "waited_s": round(waited, 1),
                    "quiet": cores < QUIET["threshold_cores"]}
        time.sleep(2.0)


# ---- machine ------------------------------------------------------------------------------------
def machine() -> dict:
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None
    cpu, mem_kb = "", 0
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    with contextlib.suppress(OSError, StopIteration):
        mem_kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                          if ln.startswith("MemTotal")))
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1), "cpu_model": cpu,
            "platform": platform.platform(), "python": platform.python_version(),
            "numpy": version("numpy"), "pyarrow": version("pyarrow"), "zen-engine": version("zen-engine"),
            "medpay": version("medpay"), "wrk": _wrk_version(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"), "git": _git()}


def source_fingerprint() -> str:
    """A hash of the engine's and the policies' files: to tell whether they changed during a run."""
    import hashlib
    h = hashlib.sha256()
    for folder in ("engine", "policies"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".yaml", ".csv", ".json"):
                h.update(str(path.relative_to(ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _git() -> dict:
    """The commit measured, and engine/policy files changed since (read-only git commands)."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None
    head = git("rev-parse", "--short", "HEAD")
    if head is None and (ROOT / ".bench-source-commit").is_file():  # a snapshot (git archive) of a commit
        return {"head": (ROOT / ".bench-source-commit").read_text().strip(), "snapshot_of_commit": True,
                "uncommitted_engine_or_policy_files": []}
    dirty = git("status", "--porcelain", "--", "engine", "policies")
    return {"head": head, "uncommitted_engine_or_policy_files": dirty.splitlines() if dirty else []}


def _wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "wrk"


# ---- child processes ------------------------------------------------------------------------------
def run_json(args: list[str], timeout: float = 3600) -> dict:
    """Run a worker; its result is the JSON on the last line of stdout."""
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(*args: str, timeout: float = 3600) -> dict:
    """One measurement in a child process, after waiting for a quiet machine; records how many
    cores other processes used meanwhile."""
    quiet = wait_quiet()
    with Contention() as c:
        result = run_json([PY, "-m", "bench.worker", *args], timeout)
    result["contention"] = {**quiet, "other_cores_during": c.other_cores, "host_probe_s": host_probe()}
    return result


def ensure_data(city: str, claims: int, seed: int) -> Path:
    """`medpay synth` once; later runs reuse the folder (bench/.data/CITY-CLAIMS-sSEED)."""
    folder = DATA / f"{city}-{claims}-s{seed}"
    meta = folder / "meta.json"
    if meta.is_file() and json.loads(meta.read_text()).get("claims") == claims:
        return folder
    cmd = [*medpay(), "synth", city, "--claims", str(claims), "--out", rel(folder), "--seed", str(seed),
           "--with-groups"]  # groups supplied, as the references read them (grouping: bench/grouping.py)
    log(f"  synth: {shlex.join(cmd)}")
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    log(f"  synth took {time.perf_counter() - t:.1f}s")
    return folder


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r["seconds"][key] for r in runs)


# ---- sections -------------------------------------------------------------------------------------
def bench_city(city: str, claims: int, seed: int, repeats: int) -> dict:
    data = ensure_data(city, claims, seed)
    out = DATA / "out" / f"{city}-{claims}"
    load_before = loadavg()
    runs = []
    for k in range(repeats):
        runs.append(worker("settle", city, str(data), str(out)))
        log(f"  {city} in-process run {k + 1}/{repeats}: total {runs[-1]['seconds']['total']:.2f}s, "
            f"eval {runs[-1]['seconds']['evaluate']:.2f}s, peak {runs[-1]['peak_rss_mb']:.0f} MB; "
            f"others used {runs[-1]['contention']['other_cores_during']} cores")
    cli = [*medpay(), "settle", city, "--data", rel(data), "--out", rel(out), "--json"]
    quiet = wait_quiet()
    with Contention() as c:
        t = time.perf_counter()
        done = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, check=True)
        cli_wall = time.perf_counter() - t
    summary = json.loads(done.stdout)
    log(f"  {city} medpay settle (subprocess): {cli_wall:.2f}s wall")
    med = {k: median_of(runs, k) for k in ("read", "evaluate", "write", "total")}
    best = {k: min(r["seconds"][k] for r in runs) for k in ("read", "evaluate", "write", "total")}
    return {"claims": claims, "data": rel(data), "repeats": repeats, "median_s": med, "min_s": best,
            "claims_per_s_end_to_end": claims / med["total"], "claims_per_s_eval": claims / med["evaluate"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "other_cores_during": [r["contention"]["other_cores_during"] for r in runs],
            "host_probe_s": [r["contention"]["host_probe_s"] for r in runs],
            "rss_before_settle_mb": statistics.median(r["rss_before_settle_mb"] for r in runs),
            "cli": {"command": shlex.join(cli), "wall_s": cli_wall, "claims_per_s": claims / cli_wall,
                    "seconds": summary["seconds"], "peak_rss_mb": summary["peak_rss_mb"],
                    "startup_and_exit_s": cli_wall - summary["seconds"]["total"],
                    "contention": {**quiet, "other_cores_during": c.other_cores, "host_probe_s": host_probe()}},
            "rows": runs[0]["rows"], "warnings": runs[0]["warnings"], "runs": runs,
            "loadavg_before": load_before, "loadavg_after": loadavg()}


def bench_reference(city: str, claims: int, seed: int, repeats: int, zen_sample: int) -> dict:
    data = ensure_data(city, claims, seed)
    load_before = loadavg()
    result = worker("reference", city, str(data), "--repeats", str(repeats), "--zen-sample", str(zen_sample),
                    "--seed", str(seed), "--engine-out", str(DATA / "out" / f"{city}-{claims}"))
    result["loadavg_before"], result["loadavg_after"] = load_before, loadavg()
    eng = claims / result["engine_eval"]["median"]
    result["engine_claims_per_s_eval"] = eng
    result["loop_claims_per_s"] = result["loop_claims"] / result["loop_s"]
    result["ratio_engine_to_loop"] = eng / result["loop_claims_per_s"]
    if "zen_claims_per_s" in result:
        result["ratio_engine_to_zen"] = eng / result["zen_claims_per_s"]
    for key in ("check_numpy_line", "check_codes_line", "check_files_line", "check_loop_line", "check_zen_line",
                "check_variant_line", "check_variant_codes_line"):
        if key in result:
            log(f"  check: {result[key]}")
    return result


def bench_startup(repeats: int) -> dict:
    """Registry.load() and the engine's imports, each in fresh interpreters."""
    reg = [worker("registry") for _ in range(repeats)]
    imports = {}
    quiet = wait_quiet()
    for module in ("engine.policy.registry", "engine.cli", "engine.batch.settle", "engine.api.app"):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        runs = [float(subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
                      .stdout.strip()) for _ in range(repeats)]
        imports[module] = {"median_s": statistics.median(runs), "min_s": min(runs), "runs": runs}

    def wall(cmd):
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
            runs.append(time.perf_counter() - t)
        return {"command": shlex.join(cmd), "median_s": statistics.median(runs), "min_s": min(runs)}
    loads = [r["load_s"] for r in reg]
    return {"registry_load_s": {"median": statistics.median(loads), "min": min(loads), "runs": loads},
            "registry_import_s": statistics.median(r["import_s"] for r in reg),
            "policies_loaded": reg[0]["policies"], "cities": reg[0]["cities"], "problems": reg[0]["problems"],
            "engine_imported_from": reg[0].get("engine_file"),
            "imports": imports, "python_startup": wall([PY, "-c", "pass"]),
            "medpay_help": wall([*medpay(), "--help"]), "repeats": repeats, "loadavg": loadavg(),
            "registry_other_cores_during": [r["contention"]["other_cores_during"] for r in reg],
            "imports_busy_cores_before": quiet["busy_cores_before"]}


def bench_big(claims: int, seed: int) -> dict:
    data = ensure_data("zibo", claims, seed)
    out = DATA / "out" / f"zibo-{claims}"
    load_before = loadavg()
    run = worker("settle", "zibo", str(data), str(out))
    log(f"  zibo {claims:,}: total {run['seconds']['total']:.1f}s, peak {run['peak_rss_mb']:.0f} MB")
    return {"city": "zibo", "claims": claims, "data": rel(data), **run,
            "claims_per_s_end_to_end": claims / run["seconds"]["total"],
            "claims_per_s_eval": claims / run["seconds"]["evaluate"],
            "loadavg_before": load_before, "loadavg_after": loadavg()}


# ---- API load test --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lua_body() -> str:
    """The request body embedded in bench/wrk_evaluate.lua."""
    text = LUA.read_text(encoding="utf-8")
    return re.search(r"wrk\.body\s*=\s*\[\[(.*?)\]\]", text, re.S).group(1)


def post(url: str, body: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def parse_wrk(stdout: str) -> dict:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("MEDPAY "))
    stats = json.loads(line[len("MEDPAY "):])
    seconds = stats["duration_us"] / 1e6
    stats["requests_per_s"] = stats["requests"] / seconds
    for key in ("p50", "p90", "p99", "p999", "mean", "max"):
        stats[f"{key}_ms"] = stats.pop(f"{key}_us") / 1000.0
    return stats


def bench_api(duration: int, connections: list[int]) -> dict:
    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    port = free_port()
    DATA.mkdir(parents=True, exist_ok=True)
    server_log = DATA / "api-server.log"
    serve = [*medpay(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(ARGS_WORKERS[0])]
    log(f"  starting: {shlex.join(serve)}")
    with server_log.open("w") as logfile:
        proc = subprocess.Popen(serve, cwd=ROOT, stdout=logfile, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {server_log}")
            time.sleep(0.2)
        status, answer = post(base + API_PATH, lua_body())
        claim = answer["entities"]["claim"][0]
        for _ in range(50):  # warm-up
            post(base + API_PATH, lua_body())
        runs = []
        for conns in connections:
            cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "2s", "-s", rel(LUA), base + API_PATH]
            log(f"  {shlex.join(cmd)}")
            quiet = wait_quiet()
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                                  timeout=duration + 60)
            stats = parse_wrk(done.stdout)
            stats.update({"connections": conns, "command": shlex.join(cmd).replace(str(port), "PORT"),
                          "loadavg_after": loadavg(), "busy_cores_before": quiet["busy_cores_before"],
                          "host_probe_s": host_probe()})
            runs.append(stats)
            log(f"    {stats['requests_per_s']:.0f} req/s, p50 {stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, "
                f"errors {stats['errors_status'] + stats['errors_connect'] + stats['errors_timeout']}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"server": shlex.join(serve).replace(str(port), "PORT"), "endpoint": API_PATH, "status": status,
            "answer_claim": claim, "runs": runs, "duration_s": duration,
            "server_log": rel(server_log), "load_tool": "wrk"}


# ---- targets and report -----------------------------------------------------------------------------
def targets(res: dict) -> list[dict]:
    out = []

    def add(what, target, value, ok):
        out.append({"what": what, "target": target, "measured": value,
                    "verdict": "n/a" if ok is None else ("holds" if ok else "MISSES")})

    cities = res.get("cities") or {}
    at_1m = {c: r for c, r in cities.items() if r.get("claims") == 1_000_000}
    for city, r in at_1m.items():
        add(f"end to end, {city}, 1M claims (in-process settle, median)", "≤ 3 s",
            f"{r['median_s']['total']:.2f} s (subprocess `medpay settle`: {r['cli']['wall_s']:.2f} s)",
            r["median_s"]["total"] <= 3.0)
    if cities and not at_1m:
        add("end to end ≤ 3 s per city at 1M claims", "≤ 3 s", "not run at 1M claims", None)
    for city, r in (res.get("references") or {}).items():
        at = r.get("claims") == 1_000_000
        add(f"engine eval vs hand-written numpy, {city}", "≤ 2×",
            f"{r['ratio_engine_to_numpy']:.2f}× (CPU {r['ratio_engine_to_numpy_cpu']:.2f}×; "
            f"vs numpy on dictionary codes {r['ratio_engine_to_codes']:.2f}×)",
            r["ratio_engine_to_numpy"] <= 2.0 if at else None)
        if "ratio_engine_to_zen" in r:
            add(f"engine vs zen-engine claims/s, {city}", "≥ 100×", f"{r['ratio_engine_to_zen']:.0f}×",
                r["ratio_engine_to_zen"] >= 100 if at else None)
    st = res.get("startup")
    if st:
        add("Registry.load() of all policies in a fresh process (median)", "≤ 0.5 s",
            f"{st['registry_load_s']['median']:.3f} s ({st['policies_loaded']} policy files)",
            st["registry_load_s"]["median"] <= 0.5)
    big = res.get("big")
    if big:
        add(f"peak RSS, zibo {big['claims']:,} claims", "≤ 4 GiB (4096 MiB)", f"{big['peak_rss_mb']:,.0f} MiB",
            big["peak_rss_mb"] <= 4096 if big["claims"] >= 10_000_000 else None)
    api = res.get("api")
    if api:
        lat = min(api["runs"], key=lambda r: r["connections"])
        thr = max(api["runs"], key=lambda r: r["requests_per_s"])
        add(f"API p99 latency, one-claim evaluate, {lat['connections']} connection(s)", "≤ 5 ms",
            f"{lat['p99_ms']:.2f} ms (p50 {lat['p50_ms']:.2f} ms)", lat["p99_ms"] <= 5.0)
        add(f"API throughput, {thr['connections']} connections", "≥ 500 req/s",
            f"{thr['requests_per_s']:.0f} req/s (p99 {thr['p99_ms']:.2f} ms)", thr["requests_per_s"] >= 500)
    return out


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(res: dict) -> str:
    parts = []
    m = res.get("machine", {})
    probe = res.get("host_probe_s", {})
    parts.append(f"machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('cpu_model')}; "
                 f"Python {m.get('python')}, numpy {m.get('numpy')}, pyarrow {m.get('pyarrow')}; "
                 f"OPENBLAS_CORETYPE={m.get('OPENBLAS_CORETYPE')}; engine {m.get('git', {}).get('head')} "
                 f"(source {res.get('engine_source', {}).get('at_start')}); host probe "
                 f"{probe.get('at_start')}s → {probe.get('at_end')}s")
    if res.get("cities"):
        rows = []
        for city, r in res["cities"].items():
            med, cli = r["median_s"], r["cli"]
            rows.append([city, f"{r['claims']:,}", f"{med['read']:.2f}", f"{med['evaluate']:.2f}", f"{med['write']:.2f}",
                         f"{med['total']:.2f}", f"{r['claims_per_s_end_to_end']:,.0f}",
                         f"{r['claims_per_s_eval']:,.0f}", f"{cli['wall_s']:.2f}", f"{cli['claims_per_s']:,.0f}",
                         f"{r['peak_rss_mb']:,.0f}", f"{r['min_s']['total']:.2f}",
                         f"{max(r.get('other_cores_during') or [0]):.2f}"])
        parts.append("settle a city-year (median of in-process runs; CLI = one `medpay settle` subprocess)\n" + table(
            ["city", "claims", "read s", "eval s", "write s", "total s", "claims/s e2e", "claims/s eval",
             "CLI s", "claims/s CLI", "peak RSS MiB", "best total s", "others' cores"], rows))
    if res.get("references"):
        rows = []
        for city, r in res["references"].items():
            rows.append([city, f"{r['claims']:,}", f"{r['engine_eval']['median']:.3f}", f"{r['numpy_eval']['median']:.3f}",
                         f"{r['ratio_engine_to_numpy']:.2f}×", f"{r['codes_eval']['median']:.3f}",
                         f"{r['ratio_engine_to_codes']:.2f}×", f"{r['loop_claims_per_s']:,.0f}",
                         f"{r['ratio_engine_to_loop']:.2f}×",
                         f"{r['zen_claims_per_s']:,.0f}" if "zen_claims_per_s" in r else "—",
                         f"{r['ratio_engine_to_zen']:.0f}×" if "ratio_engine_to_zen" in r else "—",
                         f"{r['engine_eval']['min'] / r['numpy_eval']['min']:.2f}×",
                         f"{r.get('contention', {}).get('other_cores_during', 0):.2f}"])
        parts.append("engine evaluation vs references (medians, same process; numpy = same numpy text columns as "
                     "the engine, codes = text as dictionary codes)\n" + table(
                         ["city", "claims", "engine s", "numpy s", "engine/numpy", "codes s", "engine/codes",
                          "loop claims/s", "engine/loop", "zen claims/s", "engine/zen", "best engine/numpy",
                          "others' cores"], rows))
        order = ("check_numpy_line", "check_codes_line", "check_files_line", "check_loop_line", "check_zen_line",
                 "check_variant_line", "check_variant_codes_line")
        checks = [r[k] for r in res["references"].values() for k in order if k in r]
        parts.append("checks against the engine's values\n  " + "\n  ".join(checks))
    st = res.get("startup")
    if st:
        imp = ", ".join(f"{k} {v['median_s']:.3f}s" for k, v in st["imports"].items())
        parts.append(f"start-up: Registry.load() {st['registry_load_s']['median']:.3f}s median "
                     f"({st['policies_loaded']} policy files); imports: {imp}; python -c pass "
                     f"{st['python_startup']['median_s']:.3f}s; medpay --help {st['medpay_help']['median_s']:.3f}s")
    big = res.get("big")
    if big:
        s = big["seconds"]
        parts.append(f"big: zibo {big['claims']:,} claims: read {s['read']:.1f}s, eval {s['evaluate']:.1f}s, "
                     f"write {s['write']:.1f}s, total {s['total']:.1f}s; peak RSS {big['peak_rss_mb']:,.0f} MiB")
    api = res.get("api")
    if api:
        rows = [[r["connections"], f"{r['requests']:,}", f"{r['requests_per_s']:.0f}", f"{r['p50_ms']:.2f}",
                 f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['max_ms']:.2f}",
                 r["errors_status"] + r["errors_connect"] + r["errors_timeout"]] for r in api["runs"]]
        parts.append(f"API: POST {api['endpoint']} (one claim), {api['duration_s']} s per run, wrk\n" + table(
            ["connections", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"], rows))
    src = res.get("engine_source", {})
    if src.get("at_start") != src.get("at_end"):
        parts.append("WARNING: engine/ or policies/ changed during this run; its figures mix versions")
    if len(src.get("sections_measured_on", [])) > 1:
        parts.append("NOTE: the sections of this file were measured on different engine sources: "
                     + ", ".join(src["sections_measured_on"]))
    parts.append("targets\n" + table(["target", "limit", "measured", "verdict"],
                                     [[t["what"], t["target"], t["measured"], t["verdict"]] for t in res["targets"]]))
    return "\n\n".join(parts)


ARGS_WORKERS = [1]  # server processes for --api, set from the command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--claims", type=int, help="claims per city (default 1,000,000; --quick 100,000)")
    ap.add_argument("--cities", default="all", help="all, none, or a comma list (zibo,jingdezhen)")
    ap.add_argument("--quick", action="store_true", help="100,000 claims, one repeat, small samples")
    ap.add_argument("--repeats", type=int, help="in-process settle runs per city (default 3; --quick 1)")
    ap.add_argument("--ref-repeats", type=int, help="engine vs hand-numpy evaluations (default 5; --quick 2)")
    ap.add_argument("--zen-sample", type=int, help="claims evaluated by zen-engine (default 20,000)")
    ap.add_argument("--no-references", action="store_true", help="skip hand-numpy / loop / zen comparisons")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--big", action="store_true", help="also settle 10,000,000 Zibo claims (a few minutes)")
    ap.add_argument("--big-claims", type=int, default=10_000_000)
    ap.add_argument("--api", action="store_true", help="also load-test `medpay serve` with wrk")
    ap.add_argument("--api-duration", type=int, help="seconds per wrk run (default 10; --quick 3)")
    ap.add_argument("--api-connections", default="1,8", help="wrk connections, one run each (default 1,8)")
    ap.add_argument("--api-workers", type=int, default=1, help="server processes for --api (default 1; 2 showed a 40 ms stall per request in uvicorn's multi-process mode)")
    ap.add_argument("--out", help="results JSON (default bench/results.json, --quick bench/results-quick.json)")
    ap.add_argument("--quiet-wait", type=float, default=120.0,
                    help="seconds to wait, before each measurement, for other processes to use less than "
                         "--quiet-cores (default 120; 0: do not wait)")
    ap.add_argument("--quiet-cores", type=float, default=0.3)
    args = ap.parse_args(argv)
    ARGS_WORKERS[0] = args.api_workers
    QUIET.update({"max_wait_s": args.quiet_wait, "threshold_cores": args.quiet_cores})
    claims = args.claims or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (1 if args.quick else 3)
    ref_repeats = args.ref_repeats or (2 if args.quick else 5)
    zen_sample = args.zen_sample or (2_000 if args.quick else 20_000)
    out_path = Path(args.out) if args.out else BENCH / ("results-quick.json" if args.quick else "results.json")
    cities = [] if args.cities == "none" else list(CITIES) if args.cities == "all" else args.cities.split(",")
    unknown = [c for c in cities if c not in CITIES]
    if unknown:
        ap.error(f"unknown cities {unknown}; known: {', '.join(CITIES)}")

    previous = json.loads(out_path.read_text()) if out_path.is_file() else {}
    started = dt.datetime.now().astimezone()
    command = shlex.join([rel(Path(PY)) if Path(PY).is_relative_to(ROOT) else PY, rel(Path(__file__)), *(argv or sys.argv[1:])])
    stamp = {"date": started.isoformat(timespec="seconds"), "command": command}
    res = {k: v for k, v in previous.items() if k not in ("targets", "machine")}
    res["machine"] = machine()
    fingerprint = source_fingerprint()
    stamp["engine_source"] = fingerprint
    probe_start = host_probe()
    log(f"host probe: {probe_start:.3f}s (a fixed Python + numpy workload; lower is a faster host)")
    log(f"bench: {command}")

    if cities:
        res["cities"] = {}
        for city in cities:
            log(f"settle {city} ({claims:,} claims)")
            res["cities"][city] = {**bench_city(city, claims, args.seed, repeats), **stamp}
        if not args.no_references:
            res["references"] = {}
            for city in [c for c in cities if c in REFERENCE_CITIES]:
                log(f"references {city}")
                res["references"][city] = {**bench_reference(city, claims, args.seed, ref_repeats, zen_sample), **stamp}
        log("start-up")
        res["startup"] = {**bench_startup(3 if args.quick else 5), **stamp}
    if args.big:
        log(f"big: zibo {args.big_claims:,} claims")
        res["big"] = {**bench_big(args.big_claims, args.seed), **stamp}
    if args.api:
        log("api")
        conns = [int(c) for c in args.api_connections.split(",")]
        res["api"] = {**bench_api(args.api_duration or (3 if args.quick else 10), conns), **stamp}
    res["targets"] = targets(res)
    res["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    res["engine_source"] = {"at_start": fingerprint, "at_end": source_fingerprint()}
    res["host_probe_s"] = {"at_start": probe_start, "at_end": host_probe()}
    if res["engine_source"]["at_start"] != res["engine_source"]["at_end"]:
        log("WARNING: engine/ or policies/ changed during this run; its figures mix versions — run again")
    sources = {v.get("engine_source") for k, v in res.items() if isinstance(v, dict) and "engine_source" in v
               and k != "engine_source"}
    res["engine_source"]["sections_measured_on"] = sorted(s for s in sources if s)
    out_path.write_text(json.dumps(res, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    text = report(res)
    print(text)
    out_path.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    log(f"wrote {rel(out_path)} and {rel(out_path.with_suffix('.txt'))}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
