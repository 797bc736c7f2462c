"""Caption normalisation, tokenizer and vocabulary (paper Section 4.1)."""
import json
from pathlib import Path

import pytest

from astar.train.text import (
    BOS_ID,
    DEFAULT_MIN_COUNT,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    Vocabulary,
    build_vocabulary,
    normalize,
    tokenize,
)


def msvd_tab_captions(shared_fixtures: Path) -> list[str]:
    lines = (shared_fixtures / "annotations/msvd/captions_vid_tab.txt").read_text().splitlines()
    return [line.split("\t")[1] for line in lines]


def test_normalize_lowercases_and_removes_punctuation() -> None:
    assert normalize("SOMEONE walks, and then stops.") == "someone walks and then stops"


def test_normalize_turns_apostrophes_into_spaces_like_the_shared_msvd_file() -> None:
    assert normalize("A squirrel is eating a peanut in it's shell") == "a squirrel is eating a peanut in it s shell"


def test_normalize_treats_typographic_apostrophes_and_hyphens_as_punctuation() -> None:
    assert normalize("the man\u2019s t-shirt") == "the man s t shirt"


def test_normalize_removes_symbols_such_as_backslashes() -> None:
    assert normalize("a clear\\teal sea \\") == "a clear teal sea"


def test_normalize_keeps_accented_and_non_latin_letters() -> None:
    assert normalize("Crawfish \u00c9touff\u00e9e \u0432 pot") == "crawfish \u00e9touff\u00e9e \u0432 pot"


def test_normalize_composes_decomposed_accents() -> None:
    assert normalize("e\u0301touffe\u0301e") == "\u00e9touff\u00e9e"


def test_normalize_collapses_leading_and_double_spaces() -> None:
    assert normalize(" a  man   is\tsinging ") == "a man is singing"


def test_normalize_keeps_digits() -> None:
    assert normalize("2 men play 3-on-3") == "2 men play 3 on 3"


def test_normalize_leaves_the_prenormalised_msvd_captions_unchanged(shared_fixtures: Path) -> None:
    captions = msvd_tab_captions(shared_fixtures)
    assert [normalize(caption) for caption in captions] == captions


def test_tokenize_splits_the_normalised_text_on_whitespace() -> None:
    assert tokenize('A roadside sign reads, "Pullman, America\'s Future."') == [
        "a", "roadside", "sign", "reads", "pullman", "america", "s", "future",
    ]


def test_build_vocabulary_puts_the_specials_first_in_a_fixed_order() -> None:
    vocabulary = build_vocabulary(["a cat"], min_count=1)
    assert vocabulary.tokens[:4] == SPECIALS == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)


def test_build_vocabulary_orders_words_by_count_then_alphabetically() -> None:
    vocabulary = build_vocabulary(["b a c", "c b", "c d"], min_count=1)
    assert vocabulary.tokens[4:] == ("c", "b", "a", "d")


def test_build_vocabulary_drops_words_below_the_minimum_count() -> None:
    vocabulary = build_vocabulary(["a dog runs", "a dog sits"], min_count=2)
    assert vocabulary.tokens[4:] == ("a", "dog")


def test_build_vocabulary_defaults_to_a_minimum_count_of_two() -> None:
    assert DEFAULT_MIN_COUNT == 2
    assert build_vocabulary(["once twice", "twice"]).tokens[4:] == ("twice",)


def test_build_vocabulary_counts_normalised_tokens() -> None:
    vocabulary = build_vocabulary(["The dog.", "the DOG"], min_count=2)
    assert vocabulary.tokens[4:] == ("dog", "the")


def test_build_vocabulary_rejects_a_minimum_count_below_one() -> None:
    with pytest.raises(ValueError, match="min_count"):
        build_vocabulary(["a"], min_count=0)


def test_build_vocabulary_refuses_a_minimum_count_that_keeps_no_word_naming_the_largest_usable_one() -> None:
    captions = ["a dog runs", "a dog sits", "a cat sleeps"]
    assert build_vocabulary(captions, min_count=3).tokens[4:] == ("a",)
    with pytest.raises(ValueError, match="^min_count 4 keeps no word: the most frequent, 'a', is seen 3 times; "
                                         "the largest usable min_count is 3$"):
        build_vocabulary(captions, min_count=4)


def test_build_vocabulary_refuses_captions_without_a_word() -> None:
    with pytest.raises(ValueError, match="hold no word"):
        build_vocabulary(["...", "!"], min_count=1)


def test_build_vocabulary_on_real_msvd_captions_is_deterministic(shared_fixtures: Path) -> None:
    captions = msvd_tab_captions(shared_fixtures)
    vocabulary = build_vocabulary(captions)
    assert vocabulary == build_vocabulary(list(reversed(captions)))
    assert vocabulary.tokens[4] == "a"


def test_encode_maps_words_to_ids_and_ends_with_eos() -> None:
    vocabulary = build_vocabulary(["a dog runs"], min_count=1)
    assert vocabulary.encode("A dog runs.") == [vocabulary.id("a"), vocabulary.id("dog"), vocabulary.id("runs"), EOS_ID]


def test_encode_maps_unknown_words_to_unk() -> None:
    vocabulary = build_vocabulary(["a dog"], min_count=1)
    assert vocabulary.encode("a zebra") == [vocabulary.id("a"), UNK_ID, EOS_ID]


def test_encode_of_text_without_words_is_only_eos() -> None:
    assert build_vocabulary(["a"], min_count=1).encode(" ... ") == [EOS_ID]


def test_decode_stops_at_eos_and_skips_specials() -> None:
    vocabulary = build_vocabulary(["a dog runs"], min_count=1)
    dog, runs = vocabulary.id("dog"), vocabulary.id("runs")
    assert vocabulary.decode([BOS_ID, dog, UNK_ID, runs, EOS_ID, dog, PAD_ID]) == "dog runs"


def test_decode_inverts_encode_for_known_words() -> None:
    vocabulary = build_vocabulary(["a squirrel is eating a peanut in it s shell"], min_count=1)
    text = "a squirrel is eating a peanut in it s shell"
    assert vocabulary.decode(vocabulary.encode(text)) == text


def test_decode_rejects_ids_outside_the_vocabulary() -> None:
    vocabulary = build_vocabulary(["a"], min_count=1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocabulary.decode([len(vocabulary)])


def test_vocabulary_round_trips_through_json(tmp_path: Path, shared_fixtures: Path) -> None:
    vocabulary = build_vocabulary(msvd_tab_captions(shared_fixtures) + ["\u00e9touff\u00e9e"], min_count=1)
    vocabulary.save(tmp_path / "vocabulary.json")
    assert Vocabulary.load(tmp_path / "vocabulary.json") == vocabulary


def test_vocabulary_load_rejects_a_file_of_another_format_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"tokens": ["a"]}))
    with pytest.raises(ValueError, match="other.json: not an astar-vocabulary file"):
        Vocabulary.load(path)


def test_vocabulary_load_rejects_tokens_without_the_specials_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"format": "astar-vocabulary", "version": 1, "min_count": 1, "tokens": ["a"]}))
    with pytest.raises(ValueError, match="broken.json: a vocabulary must start with"):
        Vocabulary.load(path)


def test_vocabulary_load_rejects_invalid_json_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.json"
    path.write_text('{"format": ')
    with pytest.raises(ValueError, match="truncated.json: not JSON"):
        Vocabulary.load(path)
