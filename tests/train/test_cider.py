"""The fast CIDEr-D reward gives pycocoevalcap's numbers and keeps its document frequencies."""
from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from astar.extract import AstarError
from astar.train.objectives.cider import CiderD, CiderError, DocumentFrequencies


@pytest.fixture
def msvd_references(shared_fixtures: Path) -> dict[str, list[str]]:
    """Real MSVD references (already normalised): 15 videos with 18–81 captions each."""
    references: dict[str, list[str]] = defaultdict(list)
    for line in (shared_fixtures / "annotations/msvd/captions_vid_tab.txt").read_text().splitlines():
        video_id, caption = line.split("\t")
        references[video_id].append(caption)
    return dict(references)


def candidate_sets(references: dict[str, list[str]]) -> list[dict[str, str]]:
    """Several candidates per video: its own reference, another video's, a cut, a shuffle,
    words no reference has, a single word and the empty caption."""
    rng = random.Random(0)
    videos = list(references)
    sets = []
    for kind in range(7):
        candidates = {}
        for index, video_id in enumerate(videos):
            own = rng.choice(references[video_id]).split()
            other = rng.choice(references[videos[(index + 1) % len(videos)]]).split()
            candidates[video_id] = " ".join(
                [own, other, own[: max(1, len(own) // 2)], rng.sample(own, len(own)),
                 own[:2] + ["zyzzyva", "quux", "zyzzyva"], own[:1], []][kind]
            )
        sets.append(candidates)
    return sets


def test_scores_equal_pycocoevalcap_cider_d_when_frequencies_come_from_the_scored_videos(
    msvd_references: dict[str, list[str]],
) -> None:
    cider = CiderD(DocumentFrequencies.from_references(msvd_references), msvd_references)
    for candidates in candidate_sets(msvd_references):
        _, expected = Cider().compute_score(msvd_references, {video: [text] for video, text in candidates.items()})
        ours = [cider.score(video, [text])[0] for video, text in candidates.items()]
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


def test_several_candidates_of_a_video_are_scored_as_if_one_by_one(msvd_references: dict[str, list[str]]) -> None:
    cider = CiderD(DocumentFrequencies.from_references(msvd_references), msvd_references)
    texts = [candidates["vid1"] for candidates in candidate_sets(msvd_references)]
    together = cider.score("vid1", texts)
    np.testing.assert_allclose(together, [cider.score("vid1", [text])[0] for text in texts], rtol=1e-12)
    assert together[0] > together[1] > 0 and together[-1] == 0  # own reference > another video's; empty scores 0


def test_frequencies_from_other_videos_change_the_idf_and_survive_a_save(
    msvd_references: dict[str, list[str]], tmp_path: Path
) -> None:
    train = {video: captions for video, captions in msvd_references.items() if int(video[3:]) <= 1200}
    frequencies = DocumentFrequencies.from_references(train)
    assert frequencies.videos == len(train) == 6
    frequencies.save(tmp_path / "df.npz")
    loaded = DocumentFrequencies.load(tmp_path / "df.npz")
    assert loaded.words == frequencies.words and loaded.videos == frequencies.videos
    np.testing.assert_array_equal(loaded.codes, frequencies.codes)
    np.testing.assert_array_equal(loaded.counts, frequencies.counts)
    caption = msvd_references["vid1"][0]
    fixed = CiderD(loaded, msvd_references).score("vid1", [caption])
    own = CiderD(DocumentFrequencies.from_references(msvd_references), msvd_references).score("vid1", [caption])
    assert fixed[0] != pytest.approx(own[0])


def test_unreadable_frequencies_are_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "df.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CiderError, match=f"{broken}: unusable CIDEr-D document frequencies") as raised:
        DocumentFrequencies.load(broken)
    assert isinstance(raised.value, AstarError)  # what every command catches
