"""Every committed figure is what today's code draws from the numbers committed beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.testing.compare import compare_images
from matplotlib.testing.exceptions import ImageComparisonFailure

from socialite_utils.published import draw_published, figure_spec, published_names

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ["figures", "figures/confirm", "figures/mixing", "figures/writing"]


def redraw_differences(folder: Path, tmp: Path) -> list[str]:
    """Each PNG of ``folder`` drawn again from its numbers into ``tmp``; the names whose pixels differ."""
    out = []
    for name in published_names(folder):
        fresh = [p for p in draw_published(folder, name, tmp / name) if p.suffix == ".png"][0]
        try:
            diff = compare_images(str(folder / f"{name}.png"), str(fresh), tol=0.5)
        except ImageComparisonFailure as e:  # e.g. another size
            diff = str(e)
        if diff is not None:
            out.append(f"{folder}/{name}.png: {diff}")
    return out


@pytest.mark.parametrize("folder", FOLDERS)
def test_committed_figures_are_drawn_from_the_committed_numbers(folder, tmp_path):
    path = REPO / folder
    names = published_names(path)
    assert names, f"{folder} has no figure"
    for name in names:  # every figure names its numbers, and they are committed beside it
        spec = figure_spec(name)
        assert all((path / n).exists() for n in spec.numbers), (name, spec.numbers)
        if "pdf" in spec.formats:
            assert (path / f"{name}.pdf").exists(), f"{folder}/{name}.pdf is missing beside its PNG"
    assert redraw_differences(path, tmp_path) == [], (
        f"redraw with: python -m socialite_utils.published {folder}"
    )


def test_a_figure_without_its_numbers_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'seed_points' is drawn from \['systems.csv'\]"):
        draw_published(tmp_path, "seed_points")
    with pytest.raises(KeyError, match="'loss' is not a published figure"):
        figure_spec("loss")


def test_a_changed_number_changes_the_figure(tmp_path):
    """The comparison can fail: a figure drawn from edited numbers is not the committed one."""
    src = REPO / "figures" / "confirm"
    folder = tmp_path / "pub"
    folder.mkdir()
    lines = (src / "systems.csv").read_text().splitlines()
    col = lines[0].split(",").index("mean")
    row = lines[1].split(",")
    row[col] = str(float(row[col]) - 20)  # the tuned model's seen mean, 20 points lower
    (folder / "systems.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    fresh = draw_published(folder, "seed_points", tmp_path / "fresh")[0]
    assert compare_images(str(src / "seed_points.png"), str(fresh), tol=0.5) is not None
