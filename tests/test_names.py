from __future__ import annotations

import re

from tbexport.names import file_names, matlab_names, sheet_continuation, sheet_names

VALID_SHEET = re.compile(r"^[^\[\]:*?/\\']([^\[\]:*?/\\]{0,29}[^\[\]:*?/\\'])?$")
VALID_MATLAB = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def test_sheet_names_are_valid_unique_and_recognisable() -> None:
    tags = [
        "train/loss",
        "train\\loss",
        "TRAIN/LOSS",
        "a:b*c?[d]",
        "History",
        "index",
        "metrics/validation/precision_macro_epoch",
        "metrics/validation/precision_micro_epoch",
        "'quoted'",
        "",
    ]
    names = sheet_names(tags)
    assert names["train/loss"] == "train_loss"
    assert names["train\\loss"] == "train_loss (2)"
    assert names["TRAIN/LOSS"] == "TRAIN_LOSS (3)"
    assert names["a:b*c?[d]"] == "a_b_c__d_"
    assert names["History"] == "History (2)"
    assert names["index"] == "index (2)"
    long_a = names["metrics/validation/precision_macro_epoch"]
    long_b = names["metrics/validation/precision_micro_epoch"]
    assert long_a.startswith("metrics_valid") and long_a.endswith("macro_epoch")
    assert long_b.endswith("micro_epoch")
    assert names["'quoted'"] == "quoted"
    assert names[""] == "tag"
    lowered = [n.lower() for n in names.values()]
    assert len(set(lowered)) == len(tags)
    for name in names.values():
        assert len(name) <= 31 and VALID_SHEET.match(name), name


def test_sheet_continuation_names() -> None:
    taken = {"loss"}
    assert sheet_continuation("loss", 2, taken) == "loss #2"
    assert sheet_continuation("x" * 31, 2, taken) == "x" * 28 + " #2"


def test_sheet_names_count_as_excel_does_and_hold_no_control_characters() -> None:
    emoji = "x" * 29 + "\U0001f600\U0001f600"  # 31 characters, 33 UTF-16 units
    names = sheet_names([emoji, "new\nline", "tab\there", "bell\x07"])
    assert len(names[emoji].encode("utf-16-le")) // 2 == 31
    assert names[emoji].endswith("\U0001f600\U0001f600")  # the telling end is kept
    assert [names[t] for t in ("new\nline", "tab\there", "bell\x07")] == [
        "new_line",
        "tab_here",
        "bell_",
    ]
    taken = {"loss"}
    assert sheet_continuation("x" * 27 + "\U0001f600", 2, taken) == "x" * 27 + " #2"


def test_file_names_are_safe_everywhere_and_unique_ignoring_case() -> None:
    texts = ["train/loss", "Train/Loss", "new\nline", 'a<b>:c"d|e?f*', "..", " x ", "y" * 250]
    texts += ["a b", "a_b", "CON", "nul.txt", "\u4e2d" * 100]
    names = file_names(texts)
    assert names["train/loss"] == "train_loss"
    assert names["Train/Loss"] == "Train_Loss_2"
    assert names["new\nline"] == "new_line"
    assert names['a<b>:c"d|e?f*'] == "a_b__c_d_e_f_"
    assert names[".."] == "tag" and names[" x "] == "x"
    assert (names["a b"], names["a_b"]) == ("a_b", "a_b_2")  # spaces go before uniquifying
    assert (names["CON"], names["nul.txt"]) == ("CON_", "nul.txt_")
    assert len(names["y" * 250]) == 200
    assert len(names["\u4e2d" * 100].encode()) <= 200  # bytes, as file systems count


def test_matlab_names_are_valid_and_unique() -> None:
    tags = [
        "train/loss",
        "train-loss",
        "1st",
        "end",
        "lr-AdamW",
        "__x__",
        "tbexport_tags",
        "val_metrics/precision_macro",
        "a" * 80,
        "a" * 79 + "b",
        "ÜBER",
    ]
    names = matlab_names(tags)
    assert names["train/loss"] == "train_loss"
    assert names["train-loss"] == "train_loss_2"
    assert names["1st"] == "x1st"
    assert names["end"] == "end_"
    assert names["lr-AdamW"] == "lr_AdamW"
    assert names["__x__"] == "x"
    assert names["tbexport_tags"] == "tbexport_tags_"
    assert names["val_metrics/precision_macro"] == "val_metrics_precision_macro"
    assert names["a" * 80] != names["a" * 79 + "b"]
    assert names["ÜBER"] == "BER"
    assert len(set(names.values())) == len(tags)
    for name in names.values():
        assert VALID_MATLAB.match(name), name
