import pytest
from hypothesis import given
from hypothesis import strategies as st

from surveys.audience import Audience, AudienceError, Profile


def test_everyone_includes_a_subscriber_we_know_nothing_about() -> None:
    audience = Audience.from_json("{}")
    assert audience.is_everyone
    assert audience.includes(Profile(channel="telegram"))
    assert audience.describe() == "Everyone"


def test_each_restricted_dimension_must_match() -> None:
    audience = Audience.build(key_stages=["ks3"], areas=["North"], channels=["telegram"])
    assert audience.includes(Profile(channel="telegram", key_stage="KS3", area="North"))
    assert not audience.includes(Profile(channel="web", key_stage="KS3", area="North"))
    assert not audience.includes(Profile(channel="telegram", key_stage="KS4", area="North"))
    assert not audience.includes(Profile(channel="telegram", key_stage="KS3", area="South"))


def test_unknown_value_for_a_restricted_dimension_is_left_out() -> None:
    audience = Audience.build(years=[7, 8])
    assert not audience.includes(Profile(channel="telegram", key_stage="KS3"))
    assert audience.includes(Profile(channel="telegram", year=8))
    # Unrestricted dimensions never exclude.
    assert audience.includes(Profile(channel="web", year=7, school=None, area=None))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[1]", "JSON object"),
        ("{not json", "not JSON"),
        ('{"ages": [11]}', "unknown audience field(s): ages"),
        ('{"key_stages": ["KS9"]}', "unknown key stage(s): KS9"),
        ('{"years": [2]}', "unknown school year(s): 2"),
        ('{"years": ["7"]}', "whole numbers"),
        ('{"channels": ["sms"]}', "unknown channel(s): sms"),
        ('{"areas": "North"}', "list of text"),
    ],
)
def test_bad_audiences_are_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(AudienceError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Audience.from_json(text)


@given(
    key_stages=st.sets(st.sampled_from(["KS2", "KS3", "KS4", "KS5"])),
    years=st.sets(st.integers(3, 13)),
    areas=st.sets(st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s)),
    channels=st.sets(st.sampled_from(["telegram", "web"])),
)
def test_json_round_trip(key_stages, years, areas, channels) -> None:
    audience = Audience.build(
        key_stages=list(key_stages), years=list(years), areas=list(areas), channels=list(channels)
    )
    assert Audience.from_json(audience.to_json()) == audience


def test_describe_in_plain_words() -> None:
    audience = Audience.build(key_stages=["KS4", "KS3"], channels=["telegram"])
    assert audience.describe() == "KS3, KS4 · Telegram"
