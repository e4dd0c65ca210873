"""Every scalar encoding, with values checked bit for bit against what was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

import tbexport

from .builders import (
    content_tensor,
    file_version,
    scalars_metadata,
    session_start,
    simple,
    tensor_event,
    typed_tensor,
    write_events,
)

pytestmark = pytest.mark.usefixtures("reader")

CASES = [
    ("float", 0.1, float(np.float32(0.1))),
    ("double", 0.1, 0.1),
    ("double", 1 / 3, 1 / 3),
    ("half", 0.333, float(np.float16(0.333))),
    ("bfloat16", 1.5, 1.5),
    ("bfloat16", -3.0, -3.0),
    ("int32", -7, -7.0),
    ("int64", 2**40 + 3, float(2**40 + 3)),
    ("bool", True, 1.0),
]


@pytest.mark.parametrize(
    "make", [content_tensor, typed_tensor], ids=["tensor_content", "typed_val"]
)
@pytest.mark.parametrize(("dtype", "written", "expected"), CASES)
def test_tf2_tensor_scalars(tmp_path: Path, make, dtype, written, expected) -> None:  # type: ignore[no-untyped-def]
    events = [
        file_version(),
        # TF2 sends the plugin metadata with the first point of a tag only
        tensor_event("metric", 0, make(written, dtype), metadata=scalars_metadata()),
        tensor_event("metric", 1, make(written, dtype)),
    ]
    write_events(tmp_path / "events.out.tfevents.1", events)
    frame = tbexport.read_scalars(tmp_path)
    assert frame["value"].tolist() == [expected, expected]
    assert frame["step"].tolist() == [0, 1]
    assert frame["wall_time"].tolist() == [2000.0, 2001.0]


def test_float32_values_are_bit_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    written = rng.standard_normal(500).astype(np.float32)
    write_events(
        tmp_path / "events.out.tfevents.1",
        [simple("x", i, float(v)) for i, v in enumerate(written)],
    )
    frame = tbexport.read_scalars(tmp_path)
    assert frame["value"].dtype == np.float64
    assert np.array_equal(
        frame["value"].to_numpy().astype(np.float32).view(np.uint32), written.view(np.uint32)
    )
    assert np.array_equal(frame["value"].to_numpy(), written.astype(np.float64))


def test_steps_are_int64_and_large_steps_survive(tmp_path: Path) -> None:
    big = 2**40 + 1
    write_events(
        tmp_path / "events.out.tfevents.1", [simple("x", big, 1.0), simple("x", big + 1, 2.0)]
    )
    frame = tbexport.read_scalars(tmp_path)
    assert frame["step"].dtype == np.int64
    assert frame["step"].tolist() == [big, big + 1]


def test_non_scalar_summaries_are_skipped(tmp_path: Path) -> None:
    histogram = Summary.Value(tag="weights", histo=Summary.Value().histo)
    histogram.histo.num = 3
    image = Summary.Value(
        tag="img", image=Summary.Image(height=1, width=1, encoded_image_string=b"x")
    )
    text_meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    text = tensor_event(
        "notes",
        0,
        TensorProto(dtype=7, tensor_shape=TensorShapeProto(), string_val=[b"hello"]),
        metadata=text_meta,
    )
    hparams_meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams"))
    hparams = tensor_event(
        "_hparams_/experiment", 0, content_tensor(1.0, "float"), metadata=hparams_meta
    )
    vector = tensor_event(
        "vector",
        0,
        TensorProto(
            dtype=1,
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=2)]),
            float_val=[1.0, 2.0],
        ),
        metadata=scalars_metadata(),
    )
    events = [
        file_version(),
        Event(step=0, wall_time=1.0, summary=Summary(value=[histogram, image])),
        text,
        hparams,
        vector,
        simple("loss", 0, 0.5),
    ]
    write_events(tmp_path / "events.out.tfevents.1", events)
    frame = tbexport.read_scalars(tmp_path)
    assert frame["tag"].astype(str).tolist() == ["loss"]
    assert frame["value"].tolist() == [0.5]


def test_several_values_in_one_event(tmp_path: Path) -> None:
    event = Event(
        step=3,
        wall_time=5.0,
        summary=Summary(
            value=[
                Summary.Value(tag="a", simple_value=1.0),
                Summary.Value(tag="b", simple_value=2.0),
            ]
        ),
    )
    write_events(tmp_path / "events.out.tfevents.1", [event])
    frame = tbexport.read_scalars(tmp_path)
    assert list(zip(frame["tag"].astype(str), frame["step"], frame["value"], strict=True)) == [
        ("a", 3, 1.0),
        ("b", 3, 2.0),
    ]


def test_restart_replaces_points_at_and_after_the_restart_step(tmp_path: Path) -> None:
    run = tmp_path / "version_0"
    write_events(run / "events.out.tfevents.1", [simple("loss", s, float(s)) for s in range(10)])
    write_events(
        run / "events.out.tfevents.2", [simple("loss", s, 100.0 + s) for s in range(6, 12)]
    )
    frame = tbexport.read_scalars(run)
    assert frame["step"].tolist() == list(range(12))
    assert frame["value"].tolist() == [float(s) for s in range(6)] + [
        100.0 + s for s in range(6, 12)
    ]
    kept = tbexport.read_scalars(run, keep_duplicates=True)
    assert kept["step"].tolist() == list(range(10)) + list(range(6, 12))


def test_restart_is_per_tag(tmp_path: Path) -> None:
    events = [simple("a", s, 1.0) for s in range(5)] + [simple("b", s, 2.0) for s in range(5)]
    events += [simple("a", 2, 9.0)]
    write_events(tmp_path / "events.out.tfevents.1", events)
    frame = tbexport.read_scalars(tmp_path)
    a = frame[frame["tag"] == "a"]
    b = frame[frame["tag"] == "b"]
    assert a["step"].tolist() == [0, 1, 2] and a["value"].tolist() == [1.0, 1.0, 9.0]
    assert b["step"].tolist() == list(range(5))


def test_purge_step_session_start_drops_later_points_of_every_tag(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = [simple("loss", s, 1.0) for s in range(10)] + [simple("val", 8, 0.5)]
    write_events(run / "events.out.tfevents.1", first)
    write_events(
        run / "events.out.tfevents.2",
        [session_start(5)] + [simple("loss", s, 2.0) for s in range(5, 7)],
    )
    frame = tbexport.read_scalars(run)
    loss = frame[frame["tag"] == "loss"]
    assert loss["step"].tolist() == list(range(7))
    assert loss["value"].tolist() == [1.0] * 5 + [2.0] * 2
    assert "val" not in set(frame["tag"].astype(str))  # purged: logged at step 8 >= 5


def test_tag_globs(tmp_path: Path) -> None:
    write_events(
        tmp_path / "events.out.tfevents.1",
        [simple(t, 0, 1.0) for t in ["train_loss", "val_loss", "val_acc", "lr"]],
    )
    frame = tbexport.read_scalars(tmp_path, tags=["val_*", "lr"])
    assert sorted(frame["tag"].astype(str)) == ["lr", "val_acc", "val_loss"]
    with pytest.raises(tbexport.NoMatchingTagsError, match="no scalar tag matches 'nope\\*'"):
        tbexport.read_scalars(tmp_path, tags=["nope*"])


def test_plugin_named_in_one_record_rules_a_tensor_in_another(tmp_path: Path) -> None:
    """The scalars-plugin rule spans records, whichever reader decodes each of them.

    The second record has a metadata-only value, which the C scanner leaves to
    protobuf: the tensor in it must still know that ``x`` is an images tag.
    """
    images = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="images"))
    text = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    mixed = Summary(
        value=[
            Summary.Value(tag="x", tensor=content_tensor(1.0, "double")),
            Summary.Value(tag="y", metadata=text),
            Summary.Value(tag="z", simple_value=2.0),
        ]
    )
    events = [
        tensor_event("x", 0, content_tensor(5.0, "double"), metadata=images),
        Event(step=1, wall_time=2.0, summary=mixed),
    ]
    write_events(tmp_path / "events.out.tfevents.1", events)
    frame = tbexport.read_scalars(tmp_path)
    assert frame["tag"].astype(str).tolist() == ["z"]
    assert frame["value"].tolist() == [2.0]
