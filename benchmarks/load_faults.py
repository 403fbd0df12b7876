"""The teacher path under load and faults, on 127.0.0.1 only: the generate@oss_instruct stage against a
fake OpenAI-compatible server that answers instantly (or after --latency), fails 5 % of attempts with
500/429 and lets 1 % hang past the client's timeout.

    python benchmarks/load_faults.py                 # 10,000 items, 64 in flight: reports/load_faults.{md,json}
    python benchmarks/load_faults.py --items 1000    # a quicker look

Three runs: the server alone (the same openai client, 64 threads, no faults: what the server can do),
the stage end to end with faults, and the stage SIGKILLed once half of the answers are in the response
cache, then run again. Each stage run is checked: every item ends exactly once as kept, dropped with
its reason, or a recorded teacher_error; after the kill, the rerun asks again only for what was not
cached (at most the calls in flight when it died).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from evolab.testing.teacher import JsonHandler

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/load_faults"
TIMEOUT_S = 2.0


class FakeTeacher:
    """An OpenAI-compatible chat endpoint: per attempt at a request, a seeded draw decides whether it hangs
    (`hang` share, for 2 x the client's timeout), fails (`fail` share, 500 or 429) or answers in
    OSS-Instruct's format (a problem and a solution unique to the request). A `doomed` share of requests
    fails at every attempt: the stage must record them as teacher errors."""

    def __init__(self, fail: float, hang: float, latency: float, doomed: float = 0.0):
        teacher = self
        self.lock = threading.Lock()
        self.doomed: set[str] = set()  # requests that fail at every attempt
        self.attempts: Counter[str] = Counter()  # per request body
        self.answered: set[str] = set()
        self.status: Counter[str] = Counter()

        class Handler(JsonHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                digest = hashlib.sha256(body).hexdigest()[:16]
                with teacher.lock:
                    teacher.attempts[digest] += 1
                    draw = random.Random(f"{digest}-{teacher.attempts[digest]}").random()
                    if random.Random(digest).random() < doomed:
                        teacher.doomed.add(digest)
                        draw = hang  # fails, whatever the attempt
                if draw < hang:
                    teacher.count("hang")
                    time.sleep(2 * TIMEOUT_S)
                    return self.reply(200, teacher.answer(digest))
                if draw < hang + fail:
                    teacher.count("500" if draw < hang + fail / 2 else "429")
                    return self.reply(500 if draw < hang + fail / 2 else 429, {"error": {"message": "injected fault"}})
                time.sleep(latency)
                with teacher.lock:
                    teacher.answered.add(digest)
                teacher.count("200")
                self.reply(200, teacher.answer(digest))

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection the client dropped (its timeout, or the SIGKILL): expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, what: str) -> None:
        with self.lock:
            self.status[what] += 1

    @staticmethod
    def answer(digest: str) -> dict[str, Any]:
        text = (f"[Problem Description]\nWrite `f_{digest}()`, which returns the string {digest!r}.\n\n"
                f"[Solution]\n```python\ndef f_{digest}():\n    return {digest!r}\n```")
        return {"id": digest, "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def reset(self) -> None:
        with self.lock:
            self.attempts.clear(), self.answered.clear(), self.status.clear(), self.doomed.clear()


def server_alone(teacher: FakeTeacher, items: int, in_flight: int) -> dict[str, Any]:
    """The server's own throughput with the openai client a user would use: `in_flight` threads, no faults."""
    from openai import OpenAI

    client = OpenAI(base_url=teacher.base_url, api_key="none", timeout=30, max_retries=0)

    def one(i: int) -> None:
        client.chat.completions.create(model="fake", messages=[{"role": "user", "content": f"alone {i}"}], max_tokens=8)

    start = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(one, range(items)))
    seconds = time.perf_counter() - start
    return {"requests": items, "seconds": round(seconds, 1), "requests_per_second": round(items / seconds, 1)}


def project(work: Path, teacher: FakeTeacher, items: int, in_flight: int) -> Path:
    """A scratch directory with params.yaml for generate@oss_instruct against the fake teacher."""
    sys.path.insert(0, str(ROOT))
    from evolab.core.config import compose

    work.mkdir(parents=True)
    compose(["method=oss_instruct", "teacher=openai", f"teacher.base_url={teacher.base_url}", "teacher.model=fake",
             f"teacher.concurrency={in_flight}", f"teacher.timeout={TIMEOUT_S}", "teacher.backoff=0.05", "teacher.retries=4",
             f"profile.seeds={items}", f"seed_data.path={ROOT / 'evolab/data/seeds.jsonl'}"], conf_dir=ROOT / "conf", output=work / "params.yaml")
    return work


def start_stage(work: Path, cache: Path) -> subprocess.Popen:
    """The stage under /usr/bin/time (peak RSS), in its own process group, its output to files (a pipe nobody
    reads would block it)."""
    env = {**os.environ, "EVOLAB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    log = open(work / "stage.log", "a")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(["/usr/bin/time", "-o", str(work / "time.txt"), "-f", "peak_rss_kb %M", sys.executable, "-m",
                             "stages.generate", "oss_instruct"], cwd=work, env=env, stdout=log, stderr=log, start_new_session=True)


def finish(proc: subprocess.Popen, work: Path) -> dict[str, Any]:
    if proc.wait() != 0:
        raise SystemExit(f"generate@oss_instruct failed:\n{(work / 'stage.log').read_text()[-3000:]}")
    rss = int((work / "time.txt").read_text().split()[-1])
    return {"peak_rss_gb": round(rss / 2**20, 2)}


def cached_rows(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache / 'responses.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def accounting(work: Path, items: int) -> dict[str, Any]:
    """Every item exactly once, with its outcome."""
    records = [json.loads(line) for line in (work / "data/generated/oss_instruct.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in records]
    stats = json.loads((work / "metrics/generate/oss_instruct.json").read_text())
    outcome = Counter("kept" if r["kept"] else r["reason"] for r in records)
    return {"records": len(records), "unique_ids": len(set(ids)), "expected": items, "exactly_once": sorted(ids) == [
        f"oss-{i:05d}" for i in range(items)], "outcomes": dict(outcome),
        "failed_calls": len(stats["failed_calls"]), "live_calls": stats["live_calls"], "cached_calls": stats["cached_calls"]}


def run_stage(teacher: FakeTeacher, work: Path, items: int, in_flight: int) -> dict[str, Any]:
    teacher.reset()
    cache = work / "cache"
    project(work, teacher, items, in_flight)
    start = time.perf_counter()
    result = finish(start_stage(work, cache), work)
    seconds = time.perf_counter() - start
    retries = sum(teacher.attempts.values()) - len(teacher.attempts)  # attempts beyond each request's first
    return {**result, "seconds": round(seconds, 1), "items_per_second": round(items / seconds, 1),
            "server": dict(teacher.status), "retries": retries, "doomed": len(teacher.doomed), **accounting(work, items)}


def kill_and_rerun(teacher: FakeTeacher, work: Path, items: int, in_flight: int) -> dict[str, Any]:
    teacher.reset()
    cache = work / "cache"
    project(work, teacher, items, in_flight)
    proc = start_stage(work, cache)
    while cached_rows(cache) < items // 2:
        if proc.poll() is not None:
            raise SystemExit("the stage ended before half of its answers were cached: use more --items")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the stage and /usr/bin/time around it: their own process group
    proc.wait()
    at_kill = cached_rows(cache)
    answered_before = set(teacher.answered)
    teacher.reset()
    start = time.perf_counter()
    result = finish(start_stage(work, cache), work)
    asked_again = len(teacher.attempts)  # distinct requests the rerun sent
    redone = len(set(teacher.answered) & answered_before)
    return {**result, "cached_at_kill": at_kill, "answered_before_kill": len(answered_before),
            "rerun_seconds": round(time.perf_counter() - start, 1), "rerun_distinct_requests": asked_again,
            "rerun_answered_again": redone, "in_flight": in_flight, **accounting(work, items)}


def render(r: dict[str, Any]) -> str:
    a, c, s, k = r["server_alone"], r["stage_no_faults"], r["stage"], r["kill"]
    lines = ["# The teacher path under load and faults", "",
             f"`python benchmarks/load_faults.py --items {r['items']}` on {r['machine']}: generate@oss_instruct "
             f"(teacher=openai, {r['in_flight']} in flight, timeout {TIMEOUT_S:g} s, 4 retries, backoff 0.05 s) against a fake "
             f"OpenAI-compatible server on 127.0.0.1 that answers at once, fails {r['fail']:.0%} of attempts (500/429) "
             f"and lets {r['hang']:.0%} hang for {2 * TIMEOUT_S:g} s; {r['doomed']:.1%} of requests fail at every attempt.", "",
             "| run | items | seconds | items/s | peak RSS | outcome |", "|---|---|---|---|---|---|",
             f"| server alone (openai client, {r['in_flight']} threads, no faults) | {a['requests']} | {a['seconds']} | "
             f"{a['requests_per_second']} | - | - |",
             f"| the stage, no faults | {c['records']} | {c['seconds']} | {c['items_per_second']} | {c['peak_rss_gb']} GB | "
             f"{c['outcomes']} |",
             f"| the stage, with faults | {s['records']} | {s['seconds']} | {s['items_per_second']} | {s['peak_rss_gb']} GB | "
             f"{s['outcomes']} |",
             f"| the stage killed at half, then rerun (the rerun) | {k['records']} | {k['rerun_seconds']} | - | "
             f"{k['peak_rss_gb']} GB | {k['outcomes']} |", "",
             f"Without faults the stage ran at {c['items_per_second'] / a['requests_per_second']:.0%} of the server's own rate "
             "(its seconds include starting Python, composing and writing the records); with faults at "
             f"{s['items_per_second'] / a['requests_per_second']:.0%}, the hung requests waiting out their timeout. "
             f"Server side: {s['server']} attempts; the stage sent {s['retries']} retries and recorded "
             f"{s['failed_calls']} that never succeeded as teacher_error (the server had {s['doomed']} requests that fail at every "
             "attempt).", "",
             f"Every item exactly once: {s['exactly_once']} ({s['records']} records, {s['unique_ids']} ids); after the kill: "
             f"{k['exactly_once']} ({k['records']} records, {k['unique_ids']} ids).", "",
             f"SIGKILL with {k['cached_at_kill']} answers in the cache ({k['answered_before_kill']} answered by the server by "
             f"then; the difference was in flight). The rerun sent {k['rerun_distinct_requests']} distinct requests and took "
             f"{k['cached_calls']} answers from the cache; the server answered {k['rerun_answered_again']} requests again that "
             f"it had answered before the kill (at most the {k['in_flight']} in flight can be: their answers died with the "
             "process).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--fail", type=float, default=0.05)
    parser.add_argument("--hang", type=float, default=0.01)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--doomed", type=float, default=0.002, help="share of requests failing at every attempt")
    args = parser.parse_args()
    teacher = FakeTeacher(args.fail, args.hang, args.latency, args.doomed)
    work = Path(tempfile.mkdtemp(prefix="evolab-load-"))
    alone = FakeTeacher(0.0, 0.0, args.latency)
    report = {"items": args.items, "in_flight": args.in_flight, "fail": args.fail, "hang": args.hang, "latency": args.latency,
              "doomed": args.doomed,
              "machine": f"{os.cpu_count()} cores", "server_alone": server_alone(alone, args.items, args.in_flight),
              "stage_no_faults": run_stage(alone, work / "clean", args.items, args.in_flight),
              "stage": run_stage(teacher, work / "stage", args.items, args.in_flight),
              "kill": kill_and_rerun(teacher, work / "kill", args.items, args.in_flight)}
    ok = report["stage"]["exactly_once"] and report["kill"]["exactly_once"] and \
        report["kill"]["rerun_answered_again"] <= args.in_flight and \
        report["stage"]["failed_calls"] == report["stage"]["doomed"] == report["stage"]["outcomes"].get("teacher_error", 0)
    report["passed"] = ok
    REPORT.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    REPORT.with_suffix(".md").write_text(render(report))
    print(render(report))
    if not ok:
        raise SystemExit("an item was lost, doubled or redone: see the report")


if __name__ == "__main__":
    main()
