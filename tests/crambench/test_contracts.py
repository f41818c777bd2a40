"""Hash mismatches are shown where the two hashes differ, never as equal-looking prefixes."""

from crambench.contracts import hash_pair


def test_hashes_equal_in_their_first_12_digits_are_shown_apart():
    recorded = "1a2b3c4d5e6f" + "7" * 52
    actual = "1a2b3c4d5e6f" + "7" * 20 + "0" + "7" * 31
    shown = hash_pair(recorded, actual)
    assert shown == ("1a2b3c4d5e6f" + "7" * 21 + "...", "1a2b3c4d5e6f" + "7" * 20 + "0...")
    assert shown[0] != shown[1]


def test_hashes_that_differ_early_keep_the_short_form_and_odd_values_show_whole():
    assert hash_pair("a" * 64, "b" * 64) == ("a" * 12 + "...", "b" * 12 + "...")
    assert hash_pair("abc", None) == ("'abc'", "None")
    assert hash_pair("abcd", "abc") == ("abcd", "abc")
