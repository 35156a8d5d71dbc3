import pytest

from isoflop.curate.normalise import normalise_text
from isoflop.curate.quality import document_stats, domain_thresholds, failing_rules, quality_stats


def test_normalise_keeps_code_intact_but_unifies_invisible_differences():
    assert normalise_text("def f():\r\n    return 1   \r\n\r\n") == "def f():\n    return 1"
    assert normalise_text("cafe\u0301") == "caf\u00e9"
    assert normalise_text("  indented\tcode\n") == "  indented\tcode"


def test_line_and_word_statistics():
    stats = document_stats("a bb\na bb\n\nccc # x\na bb")
    assert stats["words"] == 9
    assert stats["duplicate_line_fraction"] == pytest.approx(2 / 4)
    assert stats["duplicate_line_char_fraction"] == pytest.approx(8 / 19)
    assert stats["symbol_word_ratio"] == pytest.approx(1 / 9)
    assert stats["alpha_word_fraction"] == pytest.approx(8 / 9)
    assert stats["max_line_length"] == 7


def test_ngram_repetition_statistics():
    # the 2-gram "x y" occurs 3 times, covering 6 of the 7 word characters
    stats = document_stats("x y x y x y z")
    assert stats["top_2gram_char_fraction"] == pytest.approx(6 / 7)
    # 5-grams: xyxyx, yxyxy, xyxyz: none repeats
    assert stats["duplicate_5gram_char_fraction"] == 0.0
    words = "one two three four five " * 3
    stats = document_stats(words + "six")
    # the second and third copies of the 5-gram (10 of 16 words) are duplicates; every 5-gram
    # starting in them repeats an earlier one, so all words after the first copy are covered
    covered = len("onetwothreefourfive") * 2
    assert stats["duplicate_5gram_char_fraction"] == pytest.approx(covered / (len("onetwothreefourfive") * 3 + 3))


def test_rules_use_domain_overrides_and_none_switches_off():
    stats = quality_stats(["word " * 3, "word " * 100])
    cfg = {"rules": {"min_words": 50, "max_symbol_word_ratio": 0.1},
           "domain_rules": {"code": {"min_words": 2, "max_symbol_word_ratio": None}}}
    assert failing_rules(stats, domain_thresholds(cfg, "prose"))["min_words"].tolist() == [True, False]
    code = failing_rules(stats, domain_thresholds(cfg, "code"))
    assert code["min_words"].tolist() == [False, False]
    assert "max_symbol_word_ratio" not in code
