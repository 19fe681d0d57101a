"""docs/validation/regenerate.py: the tables of docs/validation.md rewritten between markers."""

import runpy
from pathlib import Path

import pytest

import mottscape as ms
from mottscape.validation import summarize, validate

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "validation" / "regenerate.py"
STUDY = """
[potential]
model = "block"
shape = [400]
seed = {seed}
block = 4
width = 4.0
[conductivity]
fermi_energy = 1.0
omega_min = 2e-2
omega_max = 0.4
n_omega = 3
[ensemble]
realizations = 2
"""
DOC = """# Title

Hand-written prose, kept byte for byte: ω/Δ_ξ, trailing spaces   \n
### 1D block (2 realizations)

<!-- table:pairs/block_1d -->
| old | table |
|---|---|
| 1 | 2 |
<!-- /table:pairs/block_1d -->

More prose.
<!-- table:other -->
untouched
<!-- /table:other -->
"""


@pytest.fixture(scope="module")
def regen():
    return runpy.run_path(str(SCRIPT), run_name="validation_regenerate")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny validation run saved where the script looks for ``pairs/block_1d``."""
    d = tmp_path_factory.mktemp("runs")
    (d / "s.toml").write_text(STUDY.format(seed=5))
    validate(d / "s.toml", variants={"default": {}, "effective_scaled": {"effective": "scaled"}},
             out=d / "pairs" / "block_1d")
    return d


def test_tables_replaced_between_markers_and_nothing_else(regen, saved):
    table = regen["render"](["pairs/block_1d"], saved)["pairs/block_1d"]
    assert table.startswith("| ω | ω/Δ_ξ | σ_exact |") and "| old |" not in table
    new = regen["replace_tables"](DOC, {"pairs/block_1d": table})
    start, end = regen["markers"]("pairs/block_1d")
    before, rest = new.split(start)
    inside, after = rest.split(end)
    assert inside == "\n\n" + table.strip("\n") + "\n\n"
    assert before == DOC.split(start)[0]
    assert after == DOC.split(end)[1]
    # rewriting again changes nothing (the blank lines around the table are not stacked)
    assert regen["replace_tables"](new, {"pairs/block_1d": table}) == new


def test_missing_or_repeated_marker_names_table_and_marker(regen):
    error = regen["MarkerError"]
    no_end = DOC.replace("<!-- /table:pairs/block_1d -->\n", "")
    with pytest.raises(error, match=r"table 'pairs/block_1d': marker "
                                    r"<!-- /table:pairs/block_1d --> not found"):
        regen["replace_tables"](no_end, {"pairs/block_1d": "| x |"})
    with pytest.raises(error, match=r"table 'gaussian_3d': marker <!-- table:gaussian_3d --> "
                                    "not found"):
        regen["replace_tables"](DOC, {"gaussian_3d": "| x |"})
    twice = DOC + "<!-- table:other -->\n"
    with pytest.raises(error, match=r"'other'.*found 2 times"):
        regen["replace_tables"](twice, {"other": "| x |"})


def test_tables_only_command_rewrites_the_document(regen, saved, tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC, encoding="utf-8")
    args = ["--tables-only", "--models", "pairs/block_1d", "--dest", str(saved), "--doc", str(doc)]
    assert regen["main"](args) == 0
    text = doc.read_text(encoding="utf-8")
    assert "| old |" not in text and "untouched" in text
    assert regen["report"].pairs_table(summarize(
        ms.read_netcdf(saved / "pairs" / "block_1d" / "validation.nc"))
    ).strip() in text
    # a document without the markers: exit status 2 and the marker named, file untouched
    bare = tmp_path / "bare.md"
    bare.write_text("# nothing\n", encoding="utf-8")
    assert regen["main"]([*args[:-1], str(bare)]) == 2
    assert "marker <!-- table:pairs/block_1d --> not found" in capsys.readouterr().err
    assert bare.read_text(encoding="utf-8") == "# nothing\n"
    # a --doc that does not exist stops the command before any run is computed
    with pytest.raises(SystemExit, match="is not a file"):
        regen["main"](["--models", "pairs/block_1d", "--dest", str(tmp_path / "none"),
                       "--doc", str(tmp_path / "missing.md")])
    assert not (tmp_path / "none").exists()


def test_exact_reused_only_for_the_same_samples(regen, saved, tmp_path):
    run = regen["Run"]
    same = tmp_path / "same.toml"
    same.write_text(STUDY.format(seed=5))
    other = tmp_path / "other.toml"
    other.write_text(STUDY.format(seed=6))
    found = regen["reusable_exact"](run("pairs/block_1d", same, 1), saved)
    assert found is not None and found[0].sizes["realization"] == 1
    assert regen["reusable_exact"](run("pairs/block_1d", other), saved) is None
    assert regen["reusable_exact"](run("pairs/block_1d", same, 3), saved) is None
