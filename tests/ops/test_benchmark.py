"""The deployment-size benchmark's table and README section (formatting only: the timings
themselves come from ``python -m attn_deploy.ops.benchmark``, never from a test)."""
from attn_deploy.harness.floors import MachineRates
from attn_deploy.harness.report import SPEED_MARKERS, update_readme_section
from attn_deploy.ops.benchmark import deploy_markdown


def _rows():
    return [{"case": "carafe", "title": "CARAFE case", "floor_s": 0.002, "native_s": 0.02,
             "reference_s": 0.2, "ort_s": {"band": 0.01, "shift": 0.1}},
            {"case": "criss_cross", "title": "CCA case", "floor_s": 0.004, "native_s": None,
             "reference_s": 0.05, "ort_s": {"criss_cross": 0.008}}]


def test_table_has_floor_times_and_ratios_per_case():
    rates = MachineRates(26e9, 153e9, 2)
    md = deploy_markdown(rates, _rows(), repeats=15, threads=2)
    lines = md.splitlines()
    assert "26.0 GB/s" in lines[0] and "153 GFLOP/s" in lines[0]
    assert "--threads 2" in lines[0]
    carafe = next(ln for ln in lines if ln.startswith("| CARAFE case"))
    assert "| 2.0 ms |" in carafe and "20.0 ms (10.0x)" in carafe and "200.0 ms (100.0x)" in carafe
    assert "10.0 ms (5.0x) [shift body: 100.0 ms (50.0x)]" in carafe
    assert "ORT <= 15x" in carafe
    cca = next(ln for ln in lines if ln.startswith("| CCA case"))
    assert "not built" in cca and "8.0 ms (2.0x)" in cca and "ORT <= 3x" in cca


def test_readme_section_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    start, end = SPEED_MARKERS
    readme.write_text(f"# title\n\nbefore\n{start}\nold table\n{end}\nafter\n")
    assert update_readme_section(readme, SPEED_MARKERS, ["| new |", "| table |"])
    assert readme.read_text() == f"# title\n\nbefore\n{start}\n| new |\n| table |\n{end}\nafter\n"
    other = tmp_path / "OTHER.md"
    other.write_text("no markers\n")
    assert not update_readme_section(other, SPEED_MARKERS, ["x"])
    assert other.read_text() == "no markers\n"
