"""Benchmarks: interleaved timing, unavailable runtimes carried with reasons, outputs written."""
import json

import numpy as np
import pytest
import torch

import attn_deploy as ad
from attn_deploy.backends import OnnxRuntimeRunner, TorchRunner
from attn_deploy.cli import main
from attn_deploy.harness.bench import bench_runners, block_runners, rss_mb


@pytest.fixture(scope="module")
def se(tmp_path_factory):
    m = ad.create("se", channels=16)
    return m, ad.export_block("se", tmp_path_factory.mktemp("b") / "se.onnx", model=m)


def test_bench_runners_times_every_available_runtime(se):
    m, p = se
    runners = block_runners("se", m, p, ["torch-cpu", "ort-cpu", "torch-cuda", "tensorrt"])
    feed = {"x": np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32)}
    r = bench_runners("se", runners, feed, warmup=1, repeats=7, min_seconds=0)
    timed = {t.runtime: t for t in r.timings}
    assert set(timed) == {"torch-cpu", "ort-cpu"}
    for t in timed.values():
        assert t.repeats >= 7 and 0 < t.min_ms <= t.median_ms <= t.p90_ms <= t.p99_ms
        assert t.cold_start_s is not None
    if not torch.cuda.is_available():
        assert "torch-cuda" in r.unavailable and r.unavailable["torch-cuda"]
    assert r.ratio("ort-cpu") == pytest.approx(timed["ort-cpu"].median_ms /
                                               timed["torch-cpu"].median_ms)


def test_bench_takes_each_runners_own_clock_and_memory(se):
    """The timing hook is explicit: a runner's time_infer / peak_memory_mb are what the
    benchmark reports (the TensorRT runner's engine time and memory come in this way)."""
    m, _ = se

    class DeviceClocked(TorchRunner):
        ticks = iter(range(1, 10**6))

        def time_infer(self, feed):
            self.infer(feed, check=False)
            return float(next(self.ticks))

        def peak_memory_mb(self):
            return 12.5, "device memory"

    runner = DeviceClocked(m, {"x": (torch.float32, ("N", 16, "H", "W"))}, ["y"])
    feed = {"x": np.zeros((1, 16, 4, 4), np.float32)}
    t, = bench_runners("se", [runner], feed, warmup=0, repeats=5, min_seconds=0).timings
    assert (t.min_ms, t.median_ms, t.repeats) == (1.0, 3.0, 5)
    assert (t.memory_mb, t.memory_kind) == (12.5, "device memory")


def test_each_timed_call_follows_an_untimed_call_of_the_same_runner(se):
    """Another runtime's idle threads (PyTorch's OpenMP workers) still spin when its call
    returns: the call right after it is a settle call, never a timed one."""
    m, _ = se
    calls = []

    class Logged(TorchRunner):
        def infer(self, feed, check=True):
            calls.append((self.label, "untimed"))
            return super().infer(feed, check=check)

        def time_infer(self, feed):
            calls.append((self.label, "timed"))
            super().infer(feed, check=False)
            return 1.0

    runners = []
    for label in ("a", "b"):
        r = Logged(m, {"x": (torch.float32, ("N", 16, "H", "W"))}, ["y"])
        r.label, r.name = label, f"torch-{label}"
        runners.append(r)
    feed = {"x": np.zeros((1, 16, 4, 4), np.float32)}
    bench_runners("se", runners, feed, warmup=0, repeats=3, min_seconds=0)
    timed = [i for i, (_, kind) in enumerate(calls) if kind == "timed"]
    assert len(timed) == 6
    assert all(calls[i - 1] == (calls[i][0], "untimed") for i in timed)
    calls.clear()  # one runner alone: nothing spins before its calls, no settle calls
    alone = bench_runners("se", runners[:1], feed, warmup=0, repeats=3, min_seconds=0)
    assert alone.timings[0].repeats == 3 and [k for _, k in calls] == ["timed"] * 3


def test_a_failing_runtime_is_reported_not_fatal(se, tmp_path):
    m, _ = se
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    runners = [TorchRunner(m, {"x": (torch.float32, ("N", 16, "H", "W"))}, ["y"]),
               OnnxRuntimeRunner(broken)]
    feed = {"x": np.zeros((1, 16, 4, 4), np.float32)}
    r = bench_runners("se", runners, feed, warmup=1, repeats=3, min_seconds=0)
    assert [t.runtime for t in r.timings] == ["torch-cpu"] and "ort-cpu" in r.errors


def test_fp16_on_cpu_is_reported_unavailable(se):
    m, p = se
    names = {r.name: r.availability() for r in block_runners("se", m, p, ["ort-cpu"], "fp16")}
    assert names["ort-cpu"][0] is False and "fp16" in names["ort-cpu"][1]


def test_rss_is_readable_on_linux():
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("RSS is read from /proc on Linux only")
    before = rss_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert before > 1 and rss_mb() - before > 32
    del block


def test_bench_cli_writes_json_markdown_and_plots(tmp_path, capsys):
    assert main(["bench", "eca", "--runtimes", "torch-cpu", "ort-cpu", "--repeats", "5",
                 "--warmup", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ORT CPU / eager" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["settings"]["torch_threads"] and data["results"][0]["name"] == "eca"
    for png in ("latency.png", "speedup.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| eca |" in (tmp_path / "bench.md").read_text()
    assert main(["bench"]) == 2


def test_polygraphy_reproduces_the_verdict(tmp_path, capsys):
    assert main(["polygraphy", "se", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "polygraphy run" in out and "--load-outputs" in out
    assert (tmp_path / "se.inputs.json").exists()
    assert (tmp_path / "se.reference_outputs.json").exists()


def test_polygraphy_catches_a_wrong_reference(tmp_path):
    from attn_deploy.harness.polygraphy_check import polygraphy_compare
    m = ad.create("se", channels=16)
    p = ad.export_block("se", tmp_path / "se.onnx", model=m)
    x, = ad.example_inputs("se", config={"channels": 16})
    wrong = m(x).detach().numpy() * 1.01
    v = polygraphy_compare(p, [{"x": x.numpy()}], [{"y": wrong}])
    assert not v


def test_fp16_torch_runner_casts_the_feed(se, monkeypatch):
    import attn_deploy.harness.bench as bench
    m, p = se
    monkeypatch.setattr(bench, "_FP16_RUNTIMES", ("torch-cpu",))
    runners = block_runners("se", m, p, ["torch-cpu"], "fp16")
    feed = {"x": np.random.default_rng(0).standard_normal((2, 16, 4, 4)).astype(np.float32)}
    with runners[0] as r:
        y = r.infer(feed, check=False)["y"]
    assert y.dtype == np.float16
    ref = m(torch.from_numpy(feed["x"])).detach().numpy()
    from attn_deploy.harness.compare import compare
    assert compare({"y": y}, {"y": ref}, "fp16")
