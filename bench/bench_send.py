"""Benchmark `krimppost newsletter send` against a local aiosmtpd sink.

    python bench/bench_send.py [--count 10000] [--connections 4] [--sink-processes 1]
                               [--small 1000] [--repeat 1] [--workdir DIR] [--dkim]

Makes a project from the repository's config, templates and sample content (built and
compiled at a fixed moment), imports COUNT subscribers spread evenly over three track
selections (all tracks; `wrb`; `woningmarkt` + `energietransitie`), and starts an aiosmtpd
sink in separate processes (SINK_PROCESSES processes accepting on one listening socket;
each records what it receives). Then it runs the send in a fresh process and reports:

- **messages/s**: messages accepted by the sink / wall time of the delivery run (from the
  first recipient read to the last reply; start-up, rendering the three selections and
  the preparation of the delivery log are reported separately);
- **peak RSS** of the sending process, for COUNT and for SMALL subscribers: memory must not
  grow with the number of subscribers;
- **sink ceiling**: the same three messages replayed with bare `smtplib` over the same
  number of connections, with nothing else to do: the most this sink takes on this machine;
- that every subscriber got exactly one message.

Writes bench/results/send.json. Not part of the test run.

    python bench/bench_send.py --shared [--count 10000] [--large 50000] [--repeat 3]

measures the state store on SQLite against PostgreSQL, in one run: one sender with one
connection on SQLite, one on PostgreSQL (a throw-away cluster of Debian's `postgresql`,
tests/pgcluster.py, with fsync and synchronous commits on, as a real one has), REPEAT
times alternated, the median of each; and
`send --workers 4` on PostgreSQL, each worker with one connection of its own; then the
four workers again for LARGE subscribers, for the memory per worker. The sink runs in two
processes. Budgets: PostgreSQL >= 0.9x SQLite with one worker; four workers >= 2.5x one;
peak memory per worker at LARGE within 10% of COUNT. "machine busy" is the share of all
cores busy (every process: sink, PostgreSQL, senders) while sending: where it is near 100%
more workers cannot add throughput. Writes bench/results/send_shared.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
RESULTS = BENCH / "results"
NOW = "2026-11-27T12:00"
SELECTIONS = ["", "wrb", "woningmarkt;energietransitie"]
TARGET = 300.0  # messages per second


# the sink (runs in its own processes) ----------------------------------------------------


def sink_main(port_file: Path, out_dir: Path, processes: int, latency: float = 0.0) -> None:
    """Accept on one loopback socket in PROCESSES forked aiosmtpd servers until SIGTERM."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    children = []
    for number in range(processes):
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _sink_child(listener, out_dir / f"sink-{number}.json", latency)
            os._exit(0)
        children.append(pid)
    port_file.write_text(str(listener.getsockname()[1]))
    signal.sigwait({signal.SIGTERM})
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)


class _Recording:
    def __init__(self, latency: float = 0.0) -> None:
        self.recipients: list[str] = []
        self.bytes = 0
        self.latency = latency  # seconds before the reply to the final dot: a remote relay

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.latency:
            await asyncio.sleep(self.latency)
        self.recipients.extend(envelope.rcpt_tos)
        self.bytes += len(envelope.original_content)
        return "250 2.0.0 OK"


def _sink_child(listener: socket.socket, out: Path, latency: float = 0.0) -> None:
    from aiosmtpd.smtp import SMTP

    handler = _Recording(latency)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.example.nl"), sock=listener
        )
        await stop.wait()
        server.close()

    asyncio.run(serve())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.write_text(
        json.dumps(
            {
                "recipients": handler.recipients,
                "bytes": handler.bytes,
                "cpu_s": usage.ru_utime + usage.ru_stime,
            }
        )
    )


class SinkProcess:
    def __init__(self, work: Path, processes: int, latency: float = 0.0) -> None:
        self.dir = work / "sink"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        port_file = self.dir / "port"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--sink",
                str(port_file),
                str(self.dir),
                str(processes),
                str(latency),
            ]
        )
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit("the sink did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    cpu_s = 0.0

    def stop(self) -> tuple[Counter[str], int]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        received: Counter[str] = Counter()
        size = 0
        for path in self.dir.glob("sink-*.json"):
            data = json.loads(path.read_text())
            received.update(data["recipients"])
            size += data["bytes"]
            self.cpu_s += data.get("cpu_s", 0.0)
        return received, size


# the sender (runs in a fresh process) ----------------------------------------------------


def cpu_ticks() -> tuple[int, int]:
    """(busy, all) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run_send(root: Path, out: Path, workers: int = 1) -> None:
    sys.path.insert(0, str(PROJECT))
    from pipeline.delivery.sender import send_issue

    started = time.perf_counter()
    marks: dict[str, float] = {}
    ticks: list[tuple[int, int]] = []

    def on_start(_report: object) -> None:
        marks.setdefault("start", time.perf_counter())
        ticks.append(cpu_ticks())

    report = send_issue(root, on_start=on_start, workers=workers)
    total = time.perf_counter() - started
    busy = [b - a for a, b in zip(ticks[0], cpu_ticks(), strict=True)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(
        json.dumps(
            {
                "sent": report.sent,
                "failed": report.failed,
                "uncertain": len(report.uncertain),
                "aborted": report.aborted,
                "renders": report.renders,
                "send_s": report.seconds,
                "startup_s": marks["start"] - started,
                "process_s": total,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
                # the joined workers (send --workers): the largest one's peak, their CPU
                "helper_peak_rss_mb": children.ru_maxrss / 1024,
                "helper_cpu_s": children.ru_utime + children.ru_stime,
                # every process of the machine (sink, PostgreSQL, senders) while sending:
                # 1.0 is all cores busy
                "machine_busy": busy[0] / max(busy[1], 1),
                # from the first recipient to the last worker's end (they run side by side)
                "wall_s": time.perf_counter() - marks["start"],
            }
        )
    )


# the project -----------------------------------------------------------------------------


def set_smtp(root: Path, port: int, connections: int, dkim: Path | None) -> None:
    path = root / "config.toml"
    text = re.sub(r"(?ms)^\[smtp\]\n.*?(?=^\[|\Z)", "", path.read_text(encoding="utf-8"))
    block = [
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "rate_per_second = 0",
        f"connections = {connections}",
        "max_per_connection = 100",
        "timeout = 30",
    ]
    if dkim:
        block += [
            'dkim_selector = "bench"',
            'dkim_domain = "bevolkingsdaling.nl"',
            f'dkim_key_path = "{dkim}"',
        ]
    path.write_text(text.rstrip() + "\n\n" + "\n".join(block) + "\n", encoding="utf-8")


def make_project(work: Path, count: int) -> Path:
    sys.path.insert(0, str(PROJECT))
    from pipeline.commands.approval import approve_issue
    from pipeline.commands.build import build
    from pipeline.commands.newsletter import compile_issue
    from pipeline.config import load_config
    from pipeline.delivery.subscribers import SubscriberStore
    from pipeline.state import StateStore

    root = work / f"project-{count}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in ("config.toml", "content", "templates"):
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    # The whole sample content in the issue (the default horizon leaves the older items
    # out, and a track with none), so every subscriber's selection gets a message.
    config_file = root / "config.toml"
    config_file.write_text(
        config_file.read_text(encoding="utf-8").replace(
            "[newsletter]\n", "[newsletter]\nlookback_days = 36500\n", 1
        ),
        encoding="utf-8",
    )
    now = datetime.fromisoformat(NOW)
    build(root, now)
    report = compile_issue(root, now)
    assert report.number == 1, report
    # The repository's config has approval on: only an approved issue is sent.
    approve_issue(root, 1, "bench", now)
    csv = root / "abonnees.csv"
    with csv.open("w", encoding="utf-8") as handle:
        handle.write("email,tracks\n")
        for i in range(count):
            handle.write(f"lezer{i:06d}@example.nl,{SELECTIONS[i % 3]}\n")
    config = load_config(root)
    with StateStore.of(config) as state:
        imported = SubscriberStore(state, config).import_csv(csv, csv.name, datetime.now(UTC))
    assert imported.added == count and not imported.problems
    return root


def reset_deliveries(root: Path) -> None:
    """Forget the sends of the issue, so the next run sends it to everyone again."""
    sys.path.insert(0, str(PROJECT))
    from sqlalchemy import delete

    from pipeline.config import load_config
    from pipeline.state import StateStore, schema

    with StateStore.of(load_config(root)) as state, state.transaction():
        state.conn.execute(delete(schema.deliveries))
        state.conn.execute(delete(schema.send_runs))


def measure(
    root: Path,
    work: Path,
    args: argparse.Namespace,
    dkim: Path | None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    latency: float = 0.0,
) -> dict:
    sink = SinkProcess(work, args.sink_processes, latency)
    try:
        set_smtp(root, sink.port, args.connections, dkim)
        out = work / "send.json"
        subprocess.run(
            [sys.executable, __file__, "--run-send", str(root), str(out), str(workers)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(PROJECT), **(env or {})},
        )
        result = json.loads(out.read_text())
    finally:
        received, size = sink.stop()
    result["received"] = sum(received.values())
    result["distinct"] = len(received)
    result["duplicates"] = sum(1 for n in received.values() if n > 1)
    result["bytes"] = size
    result["sink_cpu_s"] = sink.cpu_s
    result["rate"] = result["received"] / result["send_s"]
    return result


# the ceiling: bare smtplib, same messages, same connections ------------------------------


def sink_ceiling(root: Path, work: Path, args: argparse.Namespace, count: int) -> float:
    sys.path.insert(0, str(PROJECT))
    from pipeline.commands.newsletter import view_of
    from pipeline.config import load_config
    from pipeline.delivery.mime import Template, date_header
    from pipeline.render import message, templates
    from pipeline.render.newsletter import TOKEN_PLACEHOLDER, render
    from pipeline.state import IssueStore, StateStore

    config = load_config(root)
    with StateStore.of(config) as state:
        record = IssueStore(state).get(1)
    assert record is not None
    env = templates.environment(templates.template_dirs(config.templates_dir), config.site.tz)
    view = view_of(config, record)
    url = message.unsubscribe_base(config) + TOKEN_PLACEHOLDER
    messages = []
    for chosen in (
        {"wrb", "woningmarkt", "energietransitie"},
        {"wrb"},
        {"woningmarkt", "energietransitie"},
    ):
        rendered = render(env, config, view.for_tracks(chosen), url)
        template = Template(config, record.subject, rendered.text, rendered.html)
        messages.append(
            template.assemble(
                "lezer@example.nl", "A" * 22, "<x@example.nl>", date_header(datetime.now(UTC)), True
            )
        )
    sink = SinkProcess(work, args.sink_processes)
    per_thread = count // args.connections

    def work_(offset: int) -> None:
        conn = None
        for i in range(per_thread):
            if i % 100 == 0:
                if conn:
                    conn.quit()
                conn = smtplib.SMTP("127.0.0.1", sink.port)
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.ehlo()
            conn.mail("nieuwsbrief@bevolkingsdaling.nl")
            conn.rcpt(f"lezer{offset + i}@example.nl")
            conn.putcmd("data")
            conn.getreply()
            conn.send(messages[(offset + i) % 3])
            conn.send(b".\r\n")
            conn.getreply()
        assert conn is not None
        conn.quit()

    started = time.perf_counter()
    threads = [
        threading.Thread(target=work_, args=(n * per_thread,)) for n in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    received, _ = sink.stop()
    return sum(received.values()) / seconds


def shared(args: argparse.Namespace) -> None:
    """SQLite against PostgreSQL, one worker against four (see the module's doc)."""
    sys.path.insert(0, str(PROJECT / "tests"))
    import pgcluster

    work: Path = args.workdir / "shared"
    work.mkdir(parents=True, exist_ok=True)
    args.connections, args.sink_processes = 1, 2
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    cluster = pgcluster.start(settings=durable)
    results: dict[str, dict] = {}
    try:
        with pgcluster.temporary_schema(cluster.url) as (_, url):
            pg = {"KRIMPPOST_STATE_URL": url}
            os.environ.pop("KRIMPPOST_STATE_URL", None)
            lite_root = make_project(work / "sqlite", args.count)
            os.environ.update(pg)
            try:
                pg_root = make_project(work / "postgresql", args.count)
            finally:
                os.environ.pop("KRIMPPOST_STATE_URL")
            # Alternated, the median of each: this machine's speed drifts between runs.
            lite_runs, pg_runs = [], []
            for attempt in range(args.repeat or 3):
                if attempt:
                    reset_deliveries(lite_root)
                    with_env(pg, reset_deliveries, pg_root)
                lite_runs.append(measure(lite_root, work, args, None))
                pg_runs.append(measure(pg_root, work, args, None, 1, pg))
            results["sqlite, 1 worker"] = median_run(lite_runs)
            results["postgresql, 1 worker"] = median_run(pg_runs)
            with_env(pg, reset_deliveries, pg_root)
            results["postgresql, 4 workers"] = measure(pg_root, work, args, None, 4, pg)
        # A relay elsewhere answers the dot after a round trip and its own queueing: there
        # a sender waits more than it computes, which is what workers are for.
        with pgcluster.temporary_schema(cluster.url) as (_, url):
            pg = {"KRIMPPOST_STATE_URL": url}
            delay = args.relay_ms / 1000
            far_root = with_env(pg, make_project, work / "relay", args.relay_count)
            for workers in (1, 4):
                with_env(pg, reset_deliveries, far_root)
                name = f"postgresql, {workers} worker(s), {args.relay_count:,}, relay +{args.relay_ms} ms"
                results[name] = measure(far_root, work, args, None, workers, pg, delay)
        with pgcluster.temporary_schema(cluster.url) as (_, url):
            pg = {"KRIMPPOST_STATE_URL": url}
            large_root = with_env(pg, make_project, work / "large", args.large)
            results[f"postgresql, 4 workers, {args.large:,}"] = measure(
                large_root, work, args, None, 4, pg
            )
    finally:
        cluster.stop()
    for r in results.values():
        r["rate_wall"] = r["received"] / r["wall_s"]
    lite, pg1, pg4, far1, far4 = (results[k]["rate_wall"] for k in list(results)[:5])
    large = list(results.values())[5]
    small = results["postgresql, 4 workers"]
    memory = max(large["peak_rss_mb"], large["helper_peak_rss_mb"]) / max(
        small["peak_rss_mb"], small["helper_peak_rss_mb"]
    )
    print(
        f"\n{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        "1 connection per worker; sink: aiosmtpd in 2 processes\n"
    )
    print(
        "| run | messages | exactly once | messages/s | peak RSS per worker (MB) "
        "| CPU ms/message: senders, sink | machine busy |"
    )
    print("|---|---:|---|---:|---:|---|---:|")
    for name, r in results.items():
        once = r["duplicates"] == 0 and r["received"] == r["distinct"] and not r["failed"]
        peak = max(r["peak_rss_mb"], r["helper_peak_rss_mb"])
        senders = 1000 * (r["cpu_s"] + r["helper_cpu_s"]) / max(r["received"], 1)
        sink_ms = 1000 * r["sink_cpu_s"] / max(r["received"], 1)
        print(
            f"| {name} | {r['received']:,} | {'yes' if once else 'NO'} | "
            f"{r['rate_wall']:.0f} | {peak:.0f} | {senders:.1f}, {sink_ms:.1f} "
            f"| {r['machine_busy']:.0%} |"
        )
        if "all_rates" in r:
            print(f"|   (runs: {', '.join(map(str, r['all_rates']))} messages/s) | | | | | | |")
    verdicts = {
        "postgresql / sqlite, 1 worker (>= 0.9)": pg1 / lite,
        "4 workers / 1 worker, postgresql (>= 2.5)": pg4 / pg1,
        f"4 workers / 1 worker, postgresql, relay +{args.relay_ms} ms (>= 2.5)": far4 / far1,
        f"memory per worker {args.large:,} / {args.count:,} (<= 1.1)": memory,
    }
    for name, r in results.items():
        if r.get("aborted"):
            print(f"{name}: afgebroken: {r['aborted']}")
    print()
    for name, value in verdicts.items():
        print(f"{name}: {value:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "send_shared.json").write_text(
        json.dumps({"runs": results, "ratios": verdicts}, indent=2) + "\n"
    )


def median_run(runs: list[dict]) -> dict:
    """The run of the median rate, with every rate beside it."""
    ranked = sorted(runs, key=lambda r: r["received"] / r["wall_s"])
    middle = dict(ranked[len(ranked) // 2])
    middle["all_rates"] = [round(r["received"] / r["wall_s"]) for r in runs]
    return middle


def with_env(values: dict[str, str], function, *args):  # type: ignore[no-untyped-def]
    os.environ.update(values)
    try:
        return function(*args)
    finally:
        for key in values:
            os.environ.pop(key, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000, help="second run, for memory")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sink-processes", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, help="runs of each (the best is kept; --shared: the median of 3)"
    )
    parser.add_argument("--workdir", type=Path, default=BENCH / "work" / "send")
    parser.add_argument("--dkim", action="store_true", help="also sign with a 2048-bit RSA key")
    parser.add_argument("--shared", action="store_true", help="SQLite against PostgreSQL")
    parser.add_argument("--large", type=int, default=50_000, help="with --shared, for memory")
    parser.add_argument(
        "--relay-ms", type=int, default=20, help="with --shared: a remote relay's reply delay"
    )
    parser.add_argument("--relay-count", type=int, default=2_000, help="subscribers for it")
    args = parser.parse_args()
    if args.shared:
        shared(args)
        return
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)

    dkim = None
    if args.dkim:
        dkim = work / "dkim.pem"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(dkim), "2048"], check=True, capture_output=True
        )

    big = make_project(work, args.count)
    small = make_project(work, args.small)
    runs = []
    for attempt in range(args.repeat or 1):
        if attempt:
            reset_deliveries(big)
        runs.append(measure(big, work, args, None))
    best = max(runs, key=lambda r: r["rate"])
    small_run = measure(small, work, args, None)
    signed = None
    if dkim:
        reset_deliveries(big)
        signed = measure(big, work, args, dkim)
    ceiling = sink_ceiling(big, work, args, min(args.count, 6000))

    ok = best["distinct"] == args.count and best["duplicates"] == 0 and best["failed"] == 0
    rows = [
        ("send, " + f"{args.count:,} subscribers", best),
        ("send, " + f"{args.small:,} subscribers", small_run),
    ] + ([("send with DKIM (RSA 2048), " + f"{args.count:,}", signed)] if signed else [])
    print(
        f"\n{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"{args.connections} connection(s), sink: aiosmtpd in {args.sink_processes} process(es)\n"
    )
    print("| run | messages | messages/s | send (s) | start-up (s) | peak RSS (MB) | renders |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['received']:,} | {r['rate']:.0f} | {r['send_s']:.1f} | "
            f"{r['startup_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['renders']} |"
        )
    print(f"| sink ceiling: bare smtplib, same messages | – | {ceiling:.0f} | | | | |")
    print(
        f"\nall runs (msg/s): {', '.join(format(r['rate'], '.0f') for r in runs)}; "
        "every subscriber exactly "
        f"once: {'yes' if ok else 'NO'}; target >= {TARGET:.0f} msg/s: "
        f"{'met' if best['rate'] >= TARGET else 'not met'}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "send.json").write_text(
        json.dumps(
            {
                "count": args.count,
                "connections": args.connections,
                "sink_processes": args.sink_processes,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "loadavg_1min": os.getloadavg()[0],
                },
                "runs": runs,
                "small": small_run,
                "dkim": signed,
                "sink_ceiling_per_s": ceiling,
                "exactly_once": ok,
                "target_per_s": TARGET,
                "target_met": best["rate"] >= TARGET,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        sink_main(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--run-send":
        run_send(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
