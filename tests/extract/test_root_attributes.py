"""A store's root attributes are checked against storage_schema.md §3 by every reader and by a writer reopening it.

Each case hand-edits the ``zarr.json`` of a real store, as a person or a foreign tool
might, then opens it as ``open_store``, ``astar-verify`` and a resumed ``astar-extract`` do:
each refuses it in one line naming the store and the first problem.
"""
import json

import pytest
from click.testing import CliRunner

from astar.extract import StoreError, collect_inputs, extract_videos, open_store
from astar.extract.cli import main as extract_main
from astar.extract.store.root_attributes import LAYER_RULES
from astar.extract.store.schema import LayerGeometry
from astar.extract.verify import main as verify_main
from tests.extract.conftest import template_store


@pytest.fixture(scope="module")
def written(tmp_path_factory, extractor):
    """One short clip and the store the extractor wrote from it (copied by each test that edits it)."""
    return template_store(tmp_path_factory, extractor, {"a.mp4": 10}, seed=2)


def edit_root(store, edit) -> None:
    """Rewrite the store's root ``zarr.json`` with ``edit`` applied to its attributes, as a text editor would."""
    path = store / "zarr.json"
    document = json.loads(path.read_text())
    edit(document["attributes"])
    path.write_text(json.dumps(document))


def setter(key, value):
    return lambda attrs: attrs.__setitem__(key, value)


def layer_setter(index, key, value):
    return lambda attrs: attrs["layers"][index].__setitem__(key, value)


EDITS = {
    "layers missing": (lambda attrs: attrs.pop("layers"), "root attribute 'layers' is missing"),
    "layers a string": (setter("layers", "pool2,pool5"), "root attribute 'layers' must be a list of layer objects, got str"),
    "layers empty": (setter("layers", []), "root attribute 'layers' must be a list of layer objects, got []"),
    "version a string": (setter("astar_schema_version", "2"), "root attribute 'astar_schema_version' must be an int, got str"),
    "unknown backbone": (setter("backbone", "c4d"), "root attribute 'backbone' must be a registered backbone (c3d, "),
    "precision unknown": (setter("precision", "fp64"), "root attribute 'precision' must be one of fp32, bf16, fp16, got 'fp64'"),
    "fps a bool": (setter("fps", True), "root attribute 'fps' must be a positive int, got bool"),
    "fc7 channels missing": (lambda attrs: attrs["fc7"].pop("channels"), "root attribute 'fc7': 'channels' is missing"),
    "unknown preprocessing": (lambda attrs: attrs["preprocessing"].update(name="imagenet"),
                              "root attribute 'preprocessing': 'name' must be one of paper, c3d, kinetics, got 'imagenet'"),
    "layer stride a string": (layer_setter(1, "time_stride", "4"), "root attribute 'layers', entry 1: 'time_stride' must be a positive int, got str"),
    "layer stride zero": (layer_setter(3, "time_stride", 0), "root attribute 'layers', entry 3: 'time_stride' must be a positive int, got 0"),
    "layer key missing": (lambda attrs: attrs["layers"][0].pop("pool_padding"), "root attribute 'layers', entry 0: 'pool_padding' is missing"),
    "layer names repeat": (layer_setter(2, "name", "pool2"), "root attribute 'layers', entry 2: name 'pool2' is taken by an earlier layer"),
}


def assert_one_line_refusal(result, store, message: str) -> None:
    """Exit 1 and one error line (astar-extract prints its banner first)."""
    assert result.exit_code == 1, result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: {store}: {message}"), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", EDITS)
def test_open_store_refuses_a_bad_root_naming_the_store_and_the_first_problem(store, case):
    edit, message = EDITS[case]
    edit_root(store, edit)
    with pytest.raises(StoreError) as refused:
        open_store(str(store))
    assert str(refused.value).startswith(f"{store}: {message}")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("case", EDITS)
def test_astar_verify_refuses_a_bad_root_in_one_line(store, case):
    edit, message = EDITS[case]
    edit_root(store, edit)
    assert_one_line_refusal(CliRunner().invoke(verify_main, [str(store), "-q"]), store, message)


@pytest.mark.parametrize("case", ["layers missing", "unknown backbone", "layer stride a string"])
def test_astar_extract_refuses_to_resume_into_a_bad_root_instead_of_skipping(written, store, case):
    edit, message = EDITS[case]
    edit_root(store, edit)
    result = CliRunner().invoke(extract_main, [str(written[0]), "--out", str(store), "--device", "cpu", "-q"])
    assert_one_line_refusal(result, store, message)
    assert "skipped" not in result.output


def test_a_writer_reopening_a_store_with_a_string_version_names_the_type_not_the_version(written, store, extractor):
    edit_root(store, setter("astar_schema_version", "2"))
    with pytest.raises(StoreError, match="root attribute 'astar_schema_version' must be an int, got str"):
        extract_videos(collect_inputs([str(written[0])]), str(store), extractor=extractor, progress=False)


def test_an_untouched_root_and_int_centres_are_accepted(store):
    edit_root(store, layer_setter(0, "time_centre", 0))  # JSON writers may drop ".0"
    assert open_store(str(store)).video_ids == ["a"]


def test_the_layer_rules_are_the_layer_geometry_fields():
    assert [rule.key for rule in LAYER_RULES] == list(LayerGeometry.__dataclass_fields__)
