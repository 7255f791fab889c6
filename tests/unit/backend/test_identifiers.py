"""``identifier_problem``'s fast path for plain ASCII gives the verdicts of its
character-by-character check, for any text (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.identifiers import (
    STRUCTURAL,
    _character_problem,
    _plain_ascii,
    device_identifier_problem,
    identifier_problem,
)

MANY = settings(max_examples=2000, deadline=None)
# ASCII with its control characters, the space at every position, and anything else
ascii_text = st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=64)
any_text = st.text(min_size=1, max_size=64)


@MANY
@given(st.one_of(ascii_text, any_text), st.booleans())
def test_fast_path_accepts_only_what_the_character_check_accepts(text: str,
                                                                   allow_space: bool) -> None:
    if _plain_ascii(text, allow_space):
        assert _character_problem(text, "id", allow_space) is None


@MANY
@given(ascii_text, st.booleans())
def test_ascii_the_character_check_accepts_takes_the_fast_path(text: str,
                                                               allow_space: bool) -> None:
    """The fast path is not merely safe but used: no accepted ASCII text is left to the
    slow loop."""
    if _character_problem(text, "id", allow_space) is None:
        assert _plain_ascii(text, allow_space)


@MANY
@given(st.one_of(ascii_text, any_text))
def test_device_identifiers_refuse_json_structure(text: str) -> None:
    problem = device_identifier_problem(text, "bed")
    if identifier_problem(text, "bed", allow_space=True) is not None:
        assert problem is not None
    elif STRUCTURAL & set(text):
        assert problem is not None and "not allowed in a device identifier" in problem
    else:
        assert problem is None


def test_examples() -> None:
    assert identifier_problem("P-000123") is None
    assert identifier_problem("Bed 12") is not None  # a space, not allowed here
    assert identifier_problem("Bed 12", allow_space=True) is None
    assert identifier_problem(" Bed", allow_space=True) is not None
    assert identifier_problem("Bed\t1", allow_space=True) is not None
    assert device_identifier_problem('Bed "1"', "bed") is not None
