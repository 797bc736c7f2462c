"""Annotation adapters on the real fixture excerpts and on files the tests write, and store matching."""
import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from astar.train.data.datasets import (
    DATASETS,
    AnnotationError,
    Caption,
    load_annotations,
    load_csv,
    load_msrvtt,
    load_msvd,
    load_mvad,
    match_store,
)

CORPUS_HEADER = "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description"


@pytest.fixture
def annotations(shared_fixtures: Path) -> Path:
    return shared_fixtures / "annotations"


def write_corpus_csv(folder: Path, rows: list[str], mapping_from: Path | None = None) -> Path:
    """A Microsoft-corpus-style CSV with CRLF endings, optionally beside a copy of the real mapping."""
    folder.mkdir(exist_ok=True)
    path = folder / "MSR Video Description Corpus.csv"
    path.write_bytes("\r\n".join([CORPUS_HEADER, *rows, ""]).encode("utf-8"))
    if mapping_from is not None:
        shutil.copy(mapping_from / "youtube_mapping.txt", folder / "youtube_mapping.txt")
    return path


CORPUS_ROWS = [
    "-4wsuPCjDBc,5,15,1,clean,12,English,A squirrel is eating a peanut in it's shell.",
    "-4wsuPCjDBc,5,15,2,clean,9,French,Un écureuil mange une cacahuète.",
    '-_hbPLsZvvo,5,8,3,unverified,20,English,"A man, a woman, and a dog run."',
    "bQJQGoJF7_k,162,169,4,clean,7,Chinese,一个男人在跑步",
    "bQJQGoJF7_k,162,169,5,clean,8,English,A man is running.",
    "mv89psg6zh4,33,46,6,clean,11,English,A bird bathes in a sink.",
]


def splits_by_video(captions: list[Caption]) -> dict[str, str]:
    return {caption.video_id: caption.split for caption in captions}


# --- MSVD, vidN<TAB>caption + youtube_mapping.txt -------------------------------------------


def test_load_msvd_names_vid_tab_captions_by_youtube_clip(annotations: Path) -> None:
    captions = load_msvd(annotations / "msvd")
    assert captions[0] == Caption("-4wsuPCjDBc_5_15", "a squirrel is eating a peanut in it s shell", "train")


def test_load_msvd_splits_vid_tab_captions_by_vid_number(annotations: Path) -> None:
    assert splits_by_video(load_msvd(annotations / "msvd")) == {
        "-4wsuPCjDBc_5_15": "train",
        "-7KMZQEsJW4_205_208": "train",
        "-8y1Q0rA3n8_108_115": "train",
        "-_hbPLsZvvo_5_8": "train",
        "SKhmFSV-XB0_12_18": "train",
        "bQJQGoJF7_k_145_153": "train",
        "bQJQGoJF7_k_162_169": "val",
        "bSIjZ75a50s_286_304": "val",
        "eyMYc-37Sk4_0_10": "val",
        "eyhzdC936uk_15_27": "test",
        "f-24IxG9ijw_25_40": "test",
        "kWLNZzuo3do_48_53": "test",
        "mv89psg6zh4_33_46": "test",
        "zxB4dFJhHR8_1_9": "test",
        "zzit5b_-ukg_5_20": "test",
    }


def test_load_msvd_keeps_every_line_including_repeated_sentences(annotations: Path) -> None:
    counts = Counter(caption.video_id for caption in load_msvd(annotations / "msvd"))
    assert sum(counts.values()) == 606
    assert (counts["kWLNZzuo3do_48_53"], counts["SKhmFSV-XB0_12_18"]) == (81, 18)


def test_load_msvd_accepts_the_caption_file_itself(annotations: Path) -> None:
    assert len(load_msvd(annotations / "msvd/captions_vid_tab.txt")) == 606


def test_load_msvd_vid_tab_without_mapping_names_the_missing_mapping(tmp_path: Path, annotations: Path) -> None:
    shutil.copy(annotations / "msvd/captions_vid_tab.txt", tmp_path)
    with pytest.raises(AnnotationError, match=r"captions_vid_tab.txt: vidN captions need .*youtube_mapping.txt"):
        load_msvd(tmp_path)


def test_load_msvd_vid_tab_rejects_a_vid_missing_from_the_mapping_naming_the_line(
    tmp_path: Path, annotations: Path
) -> None:
    shutil.copy(annotations / "msvd/youtube_mapping.txt", tmp_path)
    (tmp_path / "captions.txt").write_text("vid1\ta cat\nvid1971\ta dog\n")
    with pytest.raises(AnnotationError, match=r"captions.txt: line 2: 'vid1971' is not a vidN listed in"):
        load_msvd(tmp_path)


def test_load_msvd_vid_tab_rejects_a_line_without_a_tab_naming_the_line(tmp_path: Path, annotations: Path) -> None:
    shutil.copy(annotations / "msvd/youtube_mapping.txt", tmp_path)
    (tmp_path / "captions.txt").write_text("vid1\ta cat\nvid2 a dog\n")
    with pytest.raises(AnnotationError, match=r"captions.txt: line 2: expected 2 tab-separated fields, got 1"):
        load_msvd(tmp_path)


def test_load_msvd_rejects_a_folder_with_two_caption_files_listing_them(tmp_path: Path, annotations: Path) -> None:
    shutil.copy(annotations / "msvd/captions_vid_tab.txt", tmp_path)
    write_corpus_csv(tmp_path, CORPUS_ROWS, mapping_from=annotations / "msvd")
    with pytest.raises(AnnotationError, match=r"expected one MSVD caption file .*found MSR .*csv, captions_vid_tab.txt"):
        load_msvd(tmp_path)


# --- MSVD, Microsoft corpus CSV -------------------------------------------------------------


def test_load_msvd_corpus_csv_keeps_english_rows_only(tmp_path: Path, annotations: Path) -> None:
    write_corpus_csv(tmp_path, CORPUS_ROWS, mapping_from=annotations / "msvd")
    texts = [caption.text for caption in load_msvd(tmp_path)]
    assert texts == [
        "A squirrel is eating a peanut in it's shell.",
        "A man, a woman, and a dog run.",
        "A man is running.",
        "A bird bathes in a sink.",
    ]


def test_load_msvd_corpus_csv_names_clips_videoid_start_end(tmp_path: Path, annotations: Path) -> None:
    write_corpus_csv(tmp_path, CORPUS_ROWS, mapping_from=annotations / "msvd")
    ids = [caption.video_id for caption in load_msvd(tmp_path)]
    assert ids == ["-4wsuPCjDBc_5_15", "-_hbPLsZvvo_5_8", "bQJQGoJF7_k_162_169", "mv89psg6zh4_33_46"]


def test_load_msvd_corpus_csv_splits_by_the_mapping(tmp_path: Path, annotations: Path) -> None:
    write_corpus_csv(tmp_path, CORPUS_ROWS, mapping_from=annotations / "msvd")
    assert splits_by_video(load_msvd(tmp_path)) == {
        "-4wsuPCjDBc_5_15": "train",
        "-_hbPLsZvvo_5_8": "train",
        "bQJQGoJF7_k_162_169": "val",
        "mv89psg6zh4_33_46": "test",
    }


def test_load_msvd_corpus_csv_skips_clips_missing_from_the_mapping_with_a_warning(
    tmp_path: Path, annotations: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_corpus_csv(tmp_path, [*CORPUS_ROWS, "zzzzzzzzzzz,1,2,7,clean,5,English,Not a standard clip."], annotations / "msvd")
    with caplog.at_level(logging.WARNING):
        captions = load_msvd(tmp_path)
    assert "zzzzzzzzzzz_1_2" not in splits_by_video(captions)
    assert "1 clips are not in" in caplog.text and "zzzzzzzzzzz_1_2" in caplog.text


def test_load_msvd_corpus_csv_without_mapping_numbers_clips_in_sorted_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_corpus_csv(tmp_path, CORPUS_ROWS)
    with caplog.at_level(logging.WARNING):
        captions = load_msvd(tmp_path)
    assert {caption.split for caption in captions} == {"train"}
    assert "not found; clips numbered in sorted order (4 clips)" in caplog.text


def test_load_msvd_corpus_csv_tolerates_non_utf8_bytes_in_other_languages(tmp_path: Path, annotations: Path) -> None:
    path = write_corpus_csv(tmp_path, CORPUS_ROWS[:1], mapping_from=annotations / "msvd")
    path.write_bytes(path.read_bytes() + b"-4wsuPCjDBc,5,15,9,clean,3,German,Ein Eichh\xf6rnchen\r\n")
    assert len(load_msvd(tmp_path)) == 1


def test_load_msvd_corpus_csv_rejects_an_unquoted_comma_naming_the_line(tmp_path: Path, annotations: Path) -> None:
    write_corpus_csv(tmp_path, [CORPUS_ROWS[0], "-_hbPLsZvvo,5,8,3,clean,20,English,A man, a dog."], annotations / "msvd")
    with pytest.raises(AnnotationError, match=r"Corpus.csv: line 3: expected 8 comma-separated fields"):
        load_msvd(tmp_path)


# --- MSR-VTT ---------------------------------------------------------------------------------


def test_load_msrvtt_uses_the_official_split_with_validate_as_val(annotations: Path) -> None:
    videos = Counter(splits_by_video(load_msrvtt(annotations / "msrvtt")).values())
    assert videos == {"train": 6, "val": 3, "test": 5}


def test_load_msrvtt_keeps_all_twenty_sentences_of_each_video(annotations: Path) -> None:
    counts = Counter(caption.video_id for caption in load_msrvtt(annotations / "msrvtt/videodatainfo_excerpt.json"))
    assert len(counts) == 14 and set(counts.values()) == {20}


def test_load_msrvtt_keeps_caption_text_as_written(annotations: Path) -> None:
    texts = {caption.text for caption in load_msrvtt(annotations / "msrvtt")}
    assert any("clear\\teal" in text for text in texts)
    assert any(text.startswith(" ") and "\u00e9" in text for text in texts)


def test_load_msrvtt_paper_split_resplits_the_official_training_set(annotations: Path) -> None:
    splits = splits_by_video(load_msrvtt(annotations / "msrvtt", paper_split=True))
    assert splits["video5071"] == "train" and splits["video6420"] == "test"
    assert splits["video6513"] == "val"


def test_load_msrvtt_paper_split_leaves_out_the_official_test_videos(annotations: Path) -> None:
    splits = splits_by_video(load_msrvtt(annotations / "msrvtt", paper_split=True))
    assert not {"video7010", "video7011", "video7360", "video7851", "video9088"} & set(splits)


def test_load_msrvtt_reads_the_2016_release_as_two_files_in_a_folder(tmp_path: Path, annotations: Path) -> None:
    document = json.loads((annotations / "msrvtt/videodatainfo_excerpt.json").read_text())
    for name, wanted in [("train_val", {"train", "validate"}), ("test", {"test"})]:
        videos = [video for video in document["videos"] if video["split"] in wanted]
        ids = {video["video_id"] for video in videos}
        sentences = [sentence for sentence in document["sentences"] if sentence["video_id"] in ids]
        part = {"info": document["info"], "videos": videos, "sentences": sentences}
        (tmp_path / f"{name}_videodatainfo.json").write_text(json.dumps(part))
    assert Counter(load_msrvtt(tmp_path)) == Counter(load_msrvtt(annotations / "msrvtt"))


def test_load_msrvtt_rejects_a_sentence_of_an_unlisted_video_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "videodatainfo.json"
    path.write_text(json.dumps({"videos": [], "sentences": [{"video_id": "video1", "caption": "a cat"}]}))
    with pytest.raises(AnnotationError, match=r"videodatainfo.json: sentence of 'video1', which is not among"):
        load_msrvtt(path)


def test_load_msrvtt_rejects_json_without_videos_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(AnnotationError, match=r"other.json: not an MSR-VTT videodatainfo file"):
        load_msrvtt(path)


def test_load_msrvtt_rejects_an_unknown_split_naming_the_video(tmp_path: Path) -> None:
    path = tmp_path / "videodatainfo.json"
    path.write_text(json.dumps({"videos": [{"video_id": "video1", "id": 1, "split": "dev"}], "sentences": []}))
    with pytest.raises(AnnotationError, match=r"videodatainfo.json: video 'video1': split 'dev' is not one of"):
        load_msrvtt(path)


def test_load_msrvtt_rejects_invalid_json_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "videodatainfo.json"
    path.write_text('{"videos": [')
    with pytest.raises(AnnotationError, match=r"videodatainfo.json: not JSON"):
        load_msrvtt(path)


# --- M-VAD (LSMDC form) ----------------------------------------------------------------------


def test_load_mvad_splits_by_file_name(annotations: Path) -> None:
    assert Counter(caption.split for caption in load_mvad(annotations / "mvad")) == {"val": 24, "test": 23}


def test_load_mvad_keeps_whole_clip_ids_and_sentences(annotations: Path) -> None:
    assert load_mvad(annotations / "mvad/LSMDC16_annos_val.csv")[0] == Caption(
        "3009_BATTLE_LOS_ANGELES_00.03.07.170-00.03.09.675", "SOMEONE walks and then stops.", "val"
    )


def test_load_mvad_keeps_double_quotes_as_literal_text(annotations: Path) -> None:
    texts = [caption.text for caption in load_mvad(annotations / "mvad/LSMDC16_annos_val.csv")]
    assert 'As it pulls into a parking lot, it passes a sign reading, "Oakley Women\'s Clinic of Cincinnati.' in texts
    assert '" Now SOMEONE fills out paperwork at a reception desk while SOMEONE waits beside her.' in texts


def test_load_mvad_skips_blind_test_files_in_a_folder(annotations: Path) -> None:
    assert not any(caption.video_id.startswith("3093_") for caption in load_mvad(annotations / "mvad"))


def test_load_mvad_rejects_a_blind_test_file_named_directly(annotations: Path) -> None:
    with pytest.raises(AnnotationError, match=r"blindtest.csv: blind test file, it has no captions"):
        load_mvad(annotations / "mvad/LSMDC16_annos_blindtest.csv")


def test_load_mvad_drops_mpii_md_clips_by_default(annotations: Path) -> None:
    movies = {caption.video_id[:4] for caption in load_mvad(annotations / "mvad")}
    assert movies == {"3009", "3010", "3011", "3026", "3031", "3034"}


def test_load_mvad_keeps_mpii_md_clips_when_asked(annotations: Path) -> None:
    ids = [caption.video_id for caption in load_mvad(annotations / "mvad", drop_mpii_md=False)]
    assert len(ids) == 59 and any(video_id.startswith("1005_Signs_") for video_id in ids)


def test_load_mvad_accepts_lf_line_endings(tmp_path: Path, annotations: Path) -> None:
    source = annotations / "mvad/LSMDC16_annos_test.csv"
    (tmp_path / source.name).write_bytes(source.read_bytes().replace(b"\r\n", b"\n"))
    assert load_mvad(tmp_path) == load_mvad(source)


def test_load_mvad_rejects_a_file_name_without_a_split(tmp_path: Path, annotations: Path) -> None:
    shutil.copy(annotations / "mvad/LSMDC16_annos_val.csv", tmp_path / "annotations.csv")
    with pytest.raises(AnnotationError, match=r"annotations.csv: cannot tell the split from the file name"):
        load_mvad(tmp_path)


def test_load_mvad_rejects_a_row_with_missing_fields_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("3001_A_00.00.01.000-00.00.02.000\t00.00.01.000\tA man sits.\n")
    with pytest.raises(AnnotationError, match=r"train.csv: line 1: expected 6 tab-separated fields, got 3"):
        load_mvad(tmp_path)


# --- Generic CSV -----------------------------------------------------------------------------


def test_load_csv_reads_video_id_caption_split_with_quoted_commas_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "captions.csv"
    path.write_bytes(b'video_id,caption,split\r\nclip-1,"A dog, running.",train\r\nclip_2,A cat,test\r\n')
    assert load_csv(path) == [Caption("clip-1", "A dog, running.", "train"), Caption("clip_2", "A cat", "test")]


def test_load_csv_maps_validate_to_val(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text("video_id,caption,split\nclip,a cat,Validate\n")
    assert load_csv(tmp_path)[0].split == "val"


def test_load_csv_ignores_extra_columns(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text("split,annotator,caption,video_id\ntrain,7,a cat,clip\n")
    assert load_csv(tmp_path) == [Caption("clip", "a cat", "train")]


def test_load_csv_rejects_an_unknown_split_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text("video_id,caption,split\nclip,a cat,train\nclip,a dog,dev\n")
    with pytest.raises(AnnotationError, match=r"captions.csv: line 3: split 'dev' is not one of"):
        load_csv(tmp_path)


def test_load_csv_rejects_a_header_without_the_columns_naming_them(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text("video,caption\nclip,a cat\n")
    with pytest.raises(AnnotationError, match=r"captions.csv: line 1: header lacks column\(s\) video_id, split"):
        load_csv(tmp_path)


def test_load_csv_skips_captions_without_words_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "captions.csv").write_text("video_id,caption,split\nclip,a cat,train\nclip, ,train\nclip,...!,train\n")
    with caplog.at_level(logging.WARNING):
        assert load_csv(tmp_path) == [Caption("clip", "a cat", "train")]
    assert "skipped 2 captions without words (blank or only punctuation)" in caplog.text


def test_adapters_name_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"nowhere.csv: no such file or folder"):
        load_csv(tmp_path / "nowhere.csv")


def test_adapters_name_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_bytes(b"video_id,caption,split\nclip,caf\xe9,train\n")
    with pytest.raises(AnnotationError, match=r"captions.csv: byte 31: not UTF-8"):
        load_csv(tmp_path)


# --- By name and default location ------------------------------------------------------------


def test_load_annotations_dispatches_by_dataset_name(annotations: Path) -> None:
    assert DATASETS == ("msvd", "msr-vtt", "m-vad", "csv")
    assert load_annotations("m-vad", annotations / "mvad") == load_mvad(annotations / "mvad")


def test_load_annotations_passes_paper_split_to_msrvtt(annotations: Path) -> None:
    assert load_annotations("msr-vtt", annotations / "msrvtt", paper_split=True) == load_msrvtt(
        annotations / "msrvtt", paper_split=True
    )


def test_load_annotations_defaults_to_the_annotations_folder_beside_the_store(
    tmp_path: Path, annotations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASTAR_DATA", raising=False)
    shutil.copytree(annotations / "mvad", tmp_path / "annotations/m-vad")
    assert len(load_annotations("m-vad", store=tmp_path / "feats.zarr")) == 47


def test_load_annotations_defaults_to_astar_data(
    tmp_path: Path, annotations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(annotations / "msvd", tmp_path / "data/msvd")
    monkeypatch.setenv("ASTAR_DATA", str(tmp_path / "data"))
    assert len(load_annotations("msvd", store=tmp_path / "feats.zarr")) == 606


def test_load_annotations_without_annotations_lists_the_paths_it_looked_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASTAR_DATA", str(tmp_path / "data"))
    with pytest.raises(AnnotationError) as error:
        load_annotations("m-vad", store=tmp_path / "feats.zarr")
    message = str(error.value)
    assert str(tmp_path / "annotations/m-vad") in message and str(tmp_path / "data/m-vad") in message
    assert "\n" not in message


def test_load_annotations_rejects_an_unknown_dataset() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'coco'; choose one of msvd, msr-vtt, m-vad, csv"):
        load_annotations("coco", Path("."))


def test_load_annotations_rejects_paper_split_outside_msrvtt(annotations: Path) -> None:
    with pytest.raises(ValueError, match="paper_split applies to msr-vtt only"):
        load_annotations("msvd", annotations / "msvd", paper_split=True)


# --- Matching with the store -----------------------------------------------------------------

CAPTIONS = [
    Caption("a", "one", "train"),
    Caption("a", "two", "train"),
    Caption("b", "three", "val"),
    Caption("c", "four", "test"),
]


def test_match_store_keeps_captions_whose_video_is_stored() -> None:
    kept, _ = match_store(CAPTIONS, ["a", "c", "z"])
    assert kept == [CAPTIONS[0], CAPTIONS[1], CAPTIONS[3]]


def test_match_store_reports_counts_and_example_ids_of_both_sides() -> None:
    _, report = match_store(CAPTIONS, ["a", "c", "z"])
    assert (report.captions, report.kept_captions, report.matched_videos) == (4, 3, 2)
    assert (report.videos_not_in_store, report.not_in_store_examples) == (1, ("b",))
    assert (report.videos_without_captions, report.without_captions_examples) == (1, ("z",))


def test_match_store_summary_is_one_line_with_counts_and_examples() -> None:
    _, report = match_store(CAPTIONS, ["a", "c", "z"])
    assert report.summary() == (
        "2 captioned videos are in the store (3 of 4 captions kept); "
        "1 captioned videos are not in the store, their 1 captions skipped (e.g. b); "
        "1 stored videos have no captions and are unused (e.g. z)"
    )


def test_match_store_summary_shows_at_most_three_examples() -> None:
    captions = [Caption(f"v{number}", "a cat", "train") for number in range(10)]
    _, report = match_store(captions, ["v0"])
    assert report.not_in_store_examples == ("v1", "v2", "v3")


def test_match_store_summary_of_a_full_match_mentions_no_gaps() -> None:
    _, report = match_store(CAPTIONS, ["a", "b", "c"])
    assert report.summary() == "3 captioned videos are in the store (4 of 4 captions kept)"


def test_match_store_matches_stored_ids_in_subfolders_by_their_last_segment() -> None:
    kept, _ = match_store(CAPTIONS[:2], ["movie/a", "movie/q"])
    assert [caption.video_id for caption in kept] == ["movie/a", "movie/a"]


def test_match_store_leaves_an_ambiguous_last_segment_unmatched() -> None:
    _, report = match_store(CAPTIONS, ["one/a", "two/a", "c"])
    assert report.not_in_store_examples == ("a", "b")


def test_match_store_without_overlap_raises_with_examples_of_both_sides(annotations: Path) -> None:
    with pytest.raises(AnnotationError, match=r"none of the 15 captioned videos is in the store .*e.g. video0"):
        match_store(load_msvd(annotations / "msvd"), ["video0", "video1"])


# Malformed records, empty annotations and videos in two splits: one line naming the file and record.


def msrvtt_document(caption: object = "a man is talking", video_id: object = "video1") -> dict:
    return {
        "videos": [{"video_id": "video1", "id": 1, "split": "train"}],
        "sentences": [{"video_id": video_id, "caption": caption, "sen_id": 0}],
    }


@pytest.mark.parametrize(
    "document, message",
    [
        (msrvtt_document(caption=None), r"sentences\[0\]: 'caption' is null, expected text"),
        (msrvtt_document(caption=42), r"sentences\[0\]: 'caption' is the number 42, expected text"),
        (msrvtt_document(video_id=["video1"]), r"sentences\[0\]: 'video_id' is a list, expected text"),
        ({"videos": [{"video_id": "video1", "id": "one", "split": "train"}], "sentences": []},
         r"video 'video1': 'id' is text, expected an integer"),
        ({"videos": [{"video_id": "video1", "id": 1, "split": None}], "sentences": []},
         r"video 'video1': 'split' is null, expected text"),
        ({"videos": [{"video_id": "video1", "split": "train"}], "sentences": []}, r"video 'video1': no 'id' field"),
        ({"videos": ["video1"], "sentences": []}, r"videos\[0\]: expected an object, got text"),
        ({"videos": {}, "sentences": []}, r"no 'videos' list"),
        ([1, 2], r"no 'videos' list"),
    ],
)
def test_load_msrvtt_names_the_file_and_record_of_a_malformed_field(tmp_path: Path, document, message) -> None:
    path = tmp_path / "videodatainfo.json"
    path.write_text(json.dumps(document))
    with pytest.raises(AnnotationError, match=f"^{re.escape(str(path))}: .*{message}") as raised:
        load_msrvtt(path)
    assert "\n" not in str(raised.value)


def test_a_header_only_csv_says_it_has_no_captions(tmp_path: Path) -> None:
    path = tmp_path / "captions.csv"
    path.write_text("video_id,caption,split\n")
    with pytest.raises(AnnotationError, match=r"captions.csv: no captions"):
        load_csv(path)


@pytest.mark.parametrize("loader, name, text", [
    (load_csv, "captions.csv", "video_id,caption,split\nclip1,a dog runs,train\nclip1,a dog is running,test\n"),
    (load_mvad, "split_in_both_train_and_test", None),
])
def test_a_video_captioned_in_two_splits_is_refused(tmp_path: Path, loader, name, text) -> None:
    if text is None:  # the same clip in an M-VAD training and test file
        path = tmp_path / "mvad"
        path.mkdir()
        row = "3001_CLIP_00.00.01.000-00.00.02.000\t0\t1\t0\t1\tSomeone walks.\n"
        (path / "LSMDC16_annos_training.csv").write_text(row)
        (path / "LSMDC16_annos_test.csv").write_text(row)
    else:
        path = tmp_path / name
        path.write_text(text)
    with pytest.raises(AnnotationError, match=r"has captions in both train and test; a video must belong to one split"):
        loader(path)


def test_match_store_without_captions_says_so() -> None:
    with pytest.raises(AnnotationError, match="^no captions to match with the store$"):
        match_store([], ["clip1"])
