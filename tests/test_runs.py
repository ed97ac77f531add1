"""Run records and exported models name no path of the machine they ran on (issue 29): paths inside the
repository are relative to it, beside it `../shared/...`, in the temporary folder `$TMPDIR/...`."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from src.data.transforms import Preprocessing
from src.export import Predictor, export, load_exported
from src.runs import REPO, command_line, portable, portable_path, save_run

TMP = Path(tempfile.gettempdir())


def _shown_in_tmp(relative: str) -> str:
    """How a path in the temporary folder is shown: `$TMPDIR/...`, or `../...` when the clone itself
    lives in the temporary folder (CI may clone into /tmp: its parent is then that folder)."""
    return f"../{relative}" if REPO.parent.resolve() == TMP.resolve() else f"$TMPDIR/{relative}"


def test_portable_path_is_relative_to_the_repository_or_beside_it():
    assert portable_path(REPO / "checkpoints" / "transfer_exported.pt") == "checkpoints/transfer_exported.pt"
    assert portable_path(REPO.parent / "shared" / "indian_monuments") == "../shared/indian_monuments"
    assert portable_path(TMP / "final40" / "transfer_exported.pt") == _shown_in_tmp("final40/transfer_exported.pt")
    assert portable_path("../shared/no_landmark") == "../shared/no_landmark"  # relative: as given
    assert portable_path(REPO) == "."


def test_portable_rewrites_paths_inside_text_and_leaves_other_values():
    record = {"command": f"python -m src train --export {TMP}/x/model.pt --data {REPO.parent}/shared/world_landmarks",
              "endpoint": "POST /v1/predict", "roots": [str(REPO / "landmark_images")], "seconds": 1.5, "done": True}
    assert portable(record) == {"command": f"python -m src train --export {_shown_in_tmp('x/model.pt')} --data ../shared/world_landmarks",
                                "endpoint": "POST /v1/predict", "roots": ["landmark_images"], "seconds": 1.5, "done": True}


def test_command_line_names_the_module_not_its_main_file():
    assert command_line([str(REPO / "src" / "__main__.py"), "train", "--export", str(TMP / "m.pt")]).endswith(
        f"-m src train --export {_shown_in_tmp('m.pt')}")
    assert command_line([str(REPO / "src" / "bench" / "__main__.py")]).endswith("-m src.bench")


def test_a_run_record_names_no_absolute_path(tmp_path):
    recipe = {"export_path": str(tmp_path / "model.pt"), "data_dir": str(REPO.parent / "shared" / "indian_monuments")}
    path = save_run("train", "default", recipe, {"roots": [recipe["data_dir"]]}, {"model": recipe["export_path"]}, folder=tmp_path)
    text = path.read_text()
    assert str(TMP) not in text and str(REPO.parent) not in text, text
    record = json.loads(text)
    assert record["recipe"]["data_dir"] == "../shared/indian_monuments" and record["recipe"]["export_path"].startswith(_shown_in_tmp(""))


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_export_is_quiet_and_its_metadata_names_no_absolute_path(tmp_path):
    """TorchScript's deprecation notices are not printed on every training run; the metadata that ships
    in the file holds the recipe with portable paths (a model exported before this keeps its old ones)."""
    predictor = Predictor(_Tiny(), ["a", "b"], preprocessing=Preprocessing(resize=40, crop=32))
    image = torch.randint(0, 255, (3, 48, 40), dtype=torch.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export(predictor, tmp_path / "model.pt", [image], metadata={"recipe": {"export_path": str(tmp_path / "model.pt")}})
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    _, metadata = load_exported(path)
    assert metadata["recipe"]["export_path"].startswith(_shown_in_tmp("")) and metadata["class_names"] == ["a", "b"]
