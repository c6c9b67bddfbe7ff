"""The README's Reliability table is what the bad-input cases measure now (and all of them end
in a clear error or the right result)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import reliability_table as rt  # noqa: E402


def test_readme_reliability_table_is_measured():
    rows = rt.measure()
    assert len(rows) >= 3, rows
    generated = rt.table(rows)
    assert rt.readme_table() == generated, (
        "README's Reliability table differs from the measured one; run "
        "`.venv/bin/python tests/robustness/reliability_table.py --write-readme`\n" + generated)
    for category, c in rows.items():
        bad = {o: c.get(o, 0) for o in ("error without the name", "traceback", "accepted")}
        assert not any(bad.values()), f"{category}: {bad}"
