"""The type checks of graphfuse.checks: a switch is a bool, a name a non-empty string, a choice of its own type."""
import pytest

from graphfuse.checks import check_bool, check_choice, check_names, check_shape, check_str


@pytest.mark.parametrize("value", [4.0, True, "4"])
def test_a_choice_is_of_the_choices_type(value):
    with pytest.raises(ValueError, match=r"'neighbourhood' must be one of \(4, 8\)"):
        check_choice(value, (4, 8), "'neighbourhood'")  # 4.0 and True == 1 used to pass as 4 and 1


def test_a_choice_passes():
    check_choice(8, (4, 8), "'neighbourhood'")
    check_choice(None, (None, "layer"), "'norm'")
    check_choice(True, (False, True), "'flag'")


@pytest.mark.parametrize("value", [0, 1, "false", None, 1.0])
def test_a_switch_is_a_bool(value):
    with pytest.raises(TypeError, match="'self_loops' must be True or False"):
        check_bool(value, "'self_loops'")
    assert check_bool(False, "'self_loops'") is False


@pytest.mark.parametrize("value", ["", None, 1, ["to"]])
def test_a_name_is_a_non_empty_string(value):
    with pytest.raises(TypeError, match="'relation' must be a non-empty string"):
        check_str(value, "'relation'")


@pytest.mark.parametrize("value, match", [
    ({"text": 1}, "must be a non-empty list of names"), ("text", "must be a non-empty list of names"),
    ([], "must be a non-empty list of names"), (["text", 3], r"'modalities'\[1\] must be a non-empty string"),
])
def test_names(value, match):
    with pytest.raises(TypeError, match=match):
        check_names(value, "'modalities'")
    assert check_names(["text", "image"], "'modalities'") == ("text", "image")


@pytest.mark.parametrize("value, error", [({}, TypeError), ([True], ValueError), ([2, -1], ValueError),
                                          ([2.0], ValueError)])
def test_shape(value, error):
    with pytest.raises(error, match="'pos_shape'"):
        check_shape(value, "'pos_shape'")
    assert check_shape([2, 3], "'pos_shape'") == (2, 3) and check_shape((), "'pos_shape'") == ()
