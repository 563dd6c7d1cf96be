#!/usr/bin/env python3
"""nobase build vs umoci (init + new + insert + config) on the same inputs, interleaved
in one run, reporting medians and ratios: on a shared machine only ratios measured
together mean anything. Called by benches/build.sh, which builds nobase first.

    benches/build.py NOBASE RUNS WORKDIR TF90 BIG700 HELLO
"""
import json
import resource
import os
import shutil
import statistics
import subprocess
import sys
import time

nobase, runs, work, tf, big, hello = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]


last_cpu = 0.0


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd, env=None, rss=True):
    """Wall seconds (perf_counter) and peak RSS in KiB of a command (0 without `rss`:
    /usr/bin/time, which reads it, adds about 1.5 ms to every command on this machine,
    too much for the startup figure). Dirty pages are written out first (untimed), so
    a tool that syncs (nobase) does not pay for the writes of the command before it
    (umoci does not sync). The command's CPU time (user + system) is left in last_cpu."""
    global last_cpu
    rss_file = os.path.join(work, "rss")
    wrap = ["/usr/bin/time", "-f", "%M", "-o", rss_file] if rss else []
    os.sync()
    c0 = children_cpu()
    t0 = time.perf_counter()
    subprocess.run([*wrap, *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    last_cpu = children_cpu() - c0
    return wall, int(open(rss_file).read().split()[-1]) if rss else 0


def du(path, exclude=".nobase-cache"):
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != exclude]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def umoci(inp, layout, rss=True):
    shutil.rmtree(layout, ignore_errors=True)
    script = (f"umoci init --layout {layout} && umoci new --image {layout}:t && "
              f"umoci insert --image {layout}:t {inp} /app/bin && "
              f"umoci config --image {layout}:t --config.entrypoint /app/bin")
    return timed(["sh", "-c", script], rss=rss)


def nb(inp, store, *extra, rss=True):
    return timed([nobase, "build", "-q", inp, "-t", "b:1", *extra], {"NOBASE_STORE": store}, rss)


def fresh(store):
    shutil.rmtree(store, ignore_errors=True)
    return store


def bench(label, inp):
    size = os.path.getsize(inp)
    rows = {k: [] for k in ("umoci", "gzip", "rebuild", "zstd", "zstd1")}
    zstd_cpu = []
    L, S, Z, Z1 = (os.path.join(work, n) for n in ("L", "S", "Z", "Z1"))
    for _ in range(runs):
        rows["umoci"].append(umoci(inp, L))
        rows["gzip"].append(nb(inp, fresh(S)))
        rows["rebuild"].append(nb(inp, S))
        rows["zstd"].append(nb(inp, fresh(Z), "--compression", "zstd"))
        zstd_cpu.append(last_cpu)
        rows["zstd1"].append(nb(inp, fresh(Z1), "--compression", "zstd", "--compression-level", "1"))
    usize, gsize, zsize, z1size = du(L), du(S), du(Z), du(Z1)
    med = {k: statistics.median(w for w, _ in v) for k, v in rows.items()}
    rss = {k: max(r for _, r in v) / 1024 for k, v in rows.items()}
    u = med["umoci"]
    print(f"\n{label}: {size / 1e6:.1f} MB input, {runs} runs each (median wall, peak RSS)")
    print(f"  umoci  gzip  {u:7.3f} s  {rss['umoci']:6.1f} MiB   layout {usize / 1e6:8.2f} MB")
    print(f"  nobase gzip  {med['gzip']:7.3f} s  {rss['gzip']:6.1f} MiB   layout {gsize / 1e6:8.2f} MB"
          f"   wall {med['gzip'] / u:.2f}x umoci, layout {gsize / usize:.3f}x")
    print(f"  nobase zstd  {med['zstd']:7.3f} s  {rss['zstd']:6.1f} MiB   layout {zsize / 1e6:8.2f} MB"
          f"   wall {med['zstd'] / u:.2f}x umoci gzip")
    cpu = statistics.median(zstd_cpu)
    cores = os.cpu_count() or 1
    print(f"  zstd CPU     {cpu:7.3f} s user+sys: shared perfectly over {cores} cores at least"
          f" {cpu / cores:.3f} s = {cpu / cores / u:.2f}x umoci gzip")
    print(f"  zstd -1      {med['zstd1']:7.3f} s  {rss['zstd1']:6.1f} MiB   layout {z1size / 1e6:8.2f} MB"
          f"   wall {med['zstd1'] / u:.2f}x umoci gzip (--compression-level 1, for the trade-off)")
    print(f"  rebuild      {med['rebuild']:7.3f} s  {rss['rebuild']:6.1f} MiB   (same store, nothing changed)"
          f" {med['rebuild'] / med['gzip']:.2f}x cold gzip")
    if shutil.which("zstd"):
        cli = statistics.median(timed(["zstd", "-q", "-3", "-T2", "-f", inp, "-o", os.path.join(work, "x.zst")])[0]
                                for _ in range(runs))
        print(f"  yardstick: the zstd CLI alone (-3 -T2, no tar, no hashing) {cli:.3f} s = {cli / u:.2f}x umoci gzip")


def startup():
    n = runs * 10
    L, S = os.path.join(work, "L"), os.path.join(work, "S")
    rows = {"umoci": [], "nobase": []}
    for _ in range(n):
        rows["umoci"].append(umoci(hello, L, rss=False)[0])
        rows["nobase"].append(nb(hello, fresh(S), rss=False)[0])
    u, m = statistics.median(rows["umoci"]), statistics.median(rows["nobase"])
    print(f"\nstartup (static hello world, {n} runs each): umoci {u * 1000:.1f} ms, nobase {m * 1000:.1f} ms"
          f" = {m / u:.2f}x umoci")
    # What nobase's durability costs here: umoci calls no fsync at all, nobase syncs each
    # blob before naming it and the index before and after its rename (five fsyncs).
    # Replayed alone, with the sizes of the image just built, between the same syncs.
    blobs = os.path.join(S, "blobs", "sha256")
    sizes = [os.path.getsize(os.path.join(blobs, b)) for b in os.listdir(blobs)]
    sizes += [os.path.getsize(os.path.join(S, "index.json"))]
    syncs = statistics.median(replay_syncs(os.path.join(work, "R"), sizes) for _ in range(n))
    print(f"  durability: the build's {len(sizes) + 1} fsyncs replayed alone (umoci makes none) {syncs * 1000:.1f} ms"
          f"; the rest of nobase's build {(m - syncs) * 1000:.1f} ms = {(m - syncs) / u:.2f}x umoci")


def replay_syncs(d, sizes):
    """Writes files of `sizes` into a fresh directory as nobase's store does (each synced,
    then renamed; the last is the index) and syncs the directory; returns the seconds."""
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    data = [os.urandom(n) for n in sizes]
    os.sync()
    t0 = time.perf_counter()
    for i, b in enumerate(data):
        tmp = os.path.join(d, f"t{i}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, os.path.join(d, f"f{i}"))
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t0


def check_node():
    """`nobase check` of node with its closure: it reads headers and the files it needs."""
    node = shutil.which("node")
    if not node:
        print("\ncheck: skipped (node is not installed)")
        return
    store = fresh(os.path.join(work, "C"))
    env = {**os.environ, "NOBASE_STORE": store}
    subprocess.run([nobase, "build", "-q", node, "-t", "node:1"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run([nobase, "tree", "--json", "node:1"], env=env, check=True,
                         capture_output=True, text=True).stdout
    total = json.loads(out)["total_bytes"]
    rows = [timed([nobase, "check", "node:1"], {"NOBASE_STORE": store}) for _ in range(runs * 2)]
    wall = statistics.median(w for w, _ in rows)
    rss = max(r for _, r in rows) / 1024
    print(f"\ncheck: node with its closure ({total / 1e6:.1f} MB of files, {du(store) / 1e6:.1f} MB stored),"
          f" {runs * 2} runs: median {wall * 1000:.0f} ms, peak RSS {rss:.1f} MiB")


startup()
check_node()
bench(f"~90 MB static Go ({tf})", tf)
bench(f"~700 MB static Go ({big})", big)
