from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bandit_bench.core.prompts import BUTTON_COLOURS, answer_grammar, arm_names, render_messages
from bandit_bench.core.specs import DesignSpec

COLOURS5 = ("blue", "green", "red", "yellow", "purple")
# The history of all three examples of the paper's appendix B.1 (K = 5, T = 10): the first arm
# paid 1, the second 0.
PAPER_HISTORY = [(0, 1), (1, 0)]

# Appendix B.1 as printed: its typographic quotes kept, its line breaks kept except around its
# end-of-line hyphenations ("An-/swer", "explo-/ration", "distribu-/tion"), which are joined.
# The paper says "We remove the blank lines for the sake of readability": the comparison is up
# to whitespace and quote style (see _normal), every word and punctuation mark must match.
PAPER_A_BNRN = """[SYSTEM] You are in a room with 5 buttons labeled blue, green, red, yellow,
purple. Each button is associated with a Bernoulli distribution with a fixed but
unknown mean; the means for the buttons could be different. For each button, when
you press it, you will get a reward that is sampled from the button’s associated
distribution. You have 10 time steps and, on each time step, you can choose any
button and receive the reward. Your goal is to maximize the total reward over the
10 time steps.
At each time step, I will show you your past choices and rewards. Then you
must make the next choice, which must be exactly one of blue, green, red, yellow,
purple. You must provide your final answer immediately within the tags
<Answer>COLOR</Answer> where COLOR is one of blue, green, red, yellow, purple
and with no text explanation.
[USER] So far you have played 2 times with the following choices and rewards:
blue button, reward 1
green button, reward 0
Which button will you choose next? Remember, YOU MUST provide your final
answer within the tags <Answer>COLOR</Answer> where COLOR is one of
blue, green, red, yellow, purple."""

PAPER_B_ASSCD = """[SYSTEM] You are recommendation engine that chooses advertisements to display
to users when they visit your webpage. There are 5 advertisements you can choose
from, named A, B, C, D, E. When a user visits the webpage you can choose an
advertisement to display and you will observe whether the user clicks on the ad or
not. You model this by assuming that each advertisement has a certain click rate
and users click on advertisements with their corresponding rates.
You have a budget of 10 users to interact with and your goal is to maximize the
total number of clicks during this process.
A good strategy to optimize for clicks in these situations requires balancing exploration
and exploitation. You need to explore to try out all of the options and find
those with high click rates, but you also have to exploit the information that you
have to accumulate clicks.
When each user visits the webpage, I will show you a summary of the data you
have collected so far.
Then you must choose which advertisement to display. You may output a distribution
over the 5 choices formatted EXACTLY like “A:n1,B:n2,C:n3,D:n4,E:n5”.
Let’s think step by step to make sure we make a good choice. Then, you must
provide your final answer within the tags <Answer>DIST</Answer> where DIST
is the distribution in the format specified above.
[USER] So far you have interacted with 2 users. Here is a summary of the data
you have collected:
Advertisement A was shown to 1 users with an estimated click rate of 1.00
Advertisement B was shown to 1 users with an estimated click rate of 0.00
Advertisement C has not been shown
Advertisement D has not been shown
Advertisement E has not been shown
Which advertisement will you choose next? Remember, YOU MUST provide your
final answer within the tags <Answer>DIST</Answer> where DIST is formatted
like “A:n1,B:n2,C:n3,D:n4,E:n5”."""

PAPER_C_BSSC_TILDE = """[SYSTEM] You are a bandit algorithm in a room with 5 buttons labeled blue, green,
red, yellow, purple. Each button is associated with a Bernoulli distribution with a
fixed but unknown mean; the means for the buttons could be different. For each
button, when you press it, you will get a reward that is sampled from the button’s
associated distribution. You have 10 time steps and, on each time step, you can
choose any button and receive the reward. Your goal is to maximize the total reward
over the 10 time steps.
At each time step, I will show you a summary of your past choices and rewards.
Then you must make the next choice, which must be exactly one of blue, green,
red, yellow, purple. Let’s think step by step to make sure we make a good choice.
You must provide your final answer within the tags <Answer>COLOR</Answer>
where COLOR is one of blue, green, red, yellow, purple.
[USER] So far you have played 2 times with your past choices and rewards
summarized as follows:
blue button: pressed 1 times with average reward 1.00
green button: pressed 1 times with average reward 0.00
red button: pressed 0 times
yellow button: pressed 0 times
purple button: pressed 0 times
Which button will you choose next? Remember, YOU MUST provide your final
answer within the tags <Answer>COLOR</Answer> where COLOR is one of
blue, green, red, yellow, purple. Let’s think step by step to make sure we make a
good choice."""


def _paper_messages(printed: str) -> tuple[str, str]:
    system, user = printed.removeprefix("[SYSTEM] ").split("\n[USER] ")
    return system, user


def _normal(text: str) -> str:
    """Whitespace runs to one space, typographic quotes to ASCII: the two liberties of the print."""
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
    return " ".join(text.split())


def _same_text(ours: str, printed: str) -> bool:
    return _normal(ours) == _normal(printed)


# The exact strings we send for the paper's (a) and (c), blank lines included, so a change of
# layout shows up too.
BNRN0_SYSTEM = (
    "You are in a room with 5 buttons labeled blue, green, red, yellow, purple. Each button is "
    "associated with a Bernoulli distribution with a fixed but unknown mean; the means for the "
    "buttons could be different. For each button, when you press it, you will get a reward that "
    "is sampled from the button's associated distribution. You have 10 time steps and, on each "
    "time step, you can choose any button and receive the reward. Your goal is to maximize the "
    "total reward over the 10 time steps.\n"
    "\n"
    "At each time step, I will show you your past choices and rewards. Then you must make the "
    "next choice, which must be exactly one of blue, green, red, yellow, purple. You must provide "
    "your final answer immediately within the tags <Answer>COLOR</Answer> where COLOR is one of "
    "blue, green, red, yellow, purple and with no text explanation."
)
BNRN0_USER = (
    "So far you have played 2 times with the following choices and rewards:\n"
    "blue button, reward 1\n"
    "green button, reward 0\n"
    "\n"
    "Which button will you choose next? Remember, YOU MUST provide your final answer within the "
    "tags <Answer>COLOR</Answer> where COLOR is one of blue, green, red, yellow, purple."
)
BSSC_SYSTEM = (
    "You are a bandit algorithm in a room with 5 buttons labeled blue, green, red, yellow, purple. "
    "Each button is associated with a Bernoulli distribution with a fixed but unknown mean; the "
    "means for the buttons could be different. For each button, when you press it, you will get a "
    "reward that is sampled from the button's associated distribution. You have 10 time steps "
    "and, on each time step, you can choose any button and receive the reward. Your goal is to "
    "maximize the total reward over the 10 time steps.\n"
    "\n"
    "At each time step, I will show you a summary of your past choices and rewards. Then you must "
    "make the next choice, which must be exactly one of blue, green, red, yellow, purple. Let's "
    "think step by step to make sure we make a good choice. You must provide your final answer "
    "within the tags <Answer>COLOR</Answer> where COLOR is one of blue, green, red, yellow, purple."
)
BSSC_USER = (
    "So far you have played 2 times with your past choices and rewards summarized as follows:\n"
    "blue button: pressed 1 times with average reward 1.00\n"
    "green button: pressed 1 times with average reward 0.00\n"
    "red button: pressed 0 times\n"
    "yellow button: pressed 0 times\n"
    "purple button: pressed 0 times\n"
    "\n"
    "Which button will you choose next? Remember, YOU MUST provide your final answer within the "
    "tags <Answer>COLOR</Answer> where COLOR is one of blue, green, red, yellow, purple. Let's "
    "think step by step to make sure we make a good choice."
)
# A longer history for the composition tests below (not one of the paper's examples).
RAW_HISTORY = [(0, 1), (1, 0), (2, 1), (0, 0), (4, 0), (3, 1)]
SUMMARY_HISTORY = [(0, 1), (0, 0), (1, 0), (2, 1), (4, 0), (4, 0)]

ALL_CODES = [
    "".join(parts) for parts in itertools.product("BA", "NS", "RS", ("N", "C", "C~"), ("0", "1", "D"))
]


def render(
    code: str, k: int = 5, horizon: int = 10, history: list[tuple[int, int]] | None = None
) -> tuple[str, str]:
    design = DesignSpec.parse(code)
    msgs = render_messages(design, arm_names(design.scenario, k), horizon, history or [])
    assert [m["role"] for m in msgs] == ["system", "user"]
    return msgs[0]["content"], msgs[1]["content"]


# ------------------------------------------------------------------ the paper's texts, word for word


@pytest.mark.parametrize(
    ("code", "printed"),
    [
        ("BNRN0", PAPER_A_BNRN),
        ("BNRN1", PAPER_A_BNRN),  # temperature is not in the text
        ("ASSCD", PAPER_B_ASSCD),
        ("BSSC~0", PAPER_C_BSSC_TILDE),
    ],
)
def test_the_three_printed_examples_word_for_word(code: str, printed: str) -> None:
    """Appendix B.1's (a) BNRN, (b) ASSCD, (c) BSSC~ with K = 5, T = 10 after two rounds."""
    system, user = render(code, history=PAPER_HISTORY)
    paper_system, paper_user = _paper_messages(printed)
    assert _normal(system) == _normal(paper_system)
    assert _normal(user) == _normal(paper_user)


def test_the_comparison_would_see_a_one_word_change() -> None:
    system, _ = render("ASSCD", history=PAPER_HISTORY)
    paper_system, _ = _paper_messages(PAPER_B_ASSCD)
    assert not _same_text(system.replace("Then, you must", "You must"), paper_system)
    assert not _same_text(system.replace("5 choices", "5 advertisements"), paper_system)


def test_bnrn0_exact_layout() -> None:
    assert render("BNRN0", history=PAPER_HISTORY) == (BNRN0_SYSTEM, BNRN0_USER)


def test_bssc_tilde_0_exact_layout() -> None:
    assert render("BSSC~0", history=PAPER_HISTORY) == (BSSC_SYSTEM, BSSC_USER)


def test_raw_history_with_no_rounds_keeps_the_structure() -> None:
    _, user = render("BNRN0", history=[])
    assert user == (
        "So far you have played 0 times with the following choices and rewards:\n"
        "\n"
        "Which button will you choose next? Remember, YOU MUST provide your final answer within the "
        "tags <Answer>COLOR</Answer> where COLOR is one of blue, green, red, yellow, purple."
    )


def test_summary_with_no_rounds_lists_every_arm_at_zero() -> None:
    _, user = render("BSSN0", history=[])
    lines = user.split("\n")
    assert (
        lines[0] == "So far you have played 0 times with your past choices and rewards summarized as follows:"
    )
    assert lines[1:6] == [f"{c} button: pressed 0 times" for c in COLOURS5]
    assert lines[6] == ""


def test_ascii_spelling_of_reinforced_cot_is_the_same_design() -> None:
    assert DesignSpec.parse("BSSCt0") == DesignSpec.parse("BSSC~0")
    assert render("BSSCt0", history=SUMMARY_HISTORY) == render("BSSC~0", history=SUMMARY_HISTORY)


# ------------------------------------------------------------------ composition rules


def test_rendering_follows_k_and_t() -> None:
    system, user = render("BNRN0", k=4, horizon=25, history=[(3, 1)])
    assert "4 buttons labeled blue, green, red, yellow." in system
    assert "You have 25 time steps" in system and "over the 25 time steps." in system
    assert "purple" not in system + user
    assert "5 buttons" not in system and "10 time steps" not in system
    assert "one of blue, green, red, yellow." in user


def test_temperature_is_not_in_the_text() -> None:
    assert render("BSRC0", history=RAW_HISTORY) == render("BSRC1", history=RAW_HISTORY)


def test_plain_cot_asks_in_the_system_message_only() -> None:
    system, user = render("BSSC0", history=PAPER_HISTORY)
    assert system == BSSC_SYSTEM
    assert "step by step" not in user
    assert user == BSSC_USER.removesuffix(" Let's think step by step to make sure we make a good choice.")


def test_distribution_output_for_buttons() -> None:
    system, user = render("BNRND", history=RAW_HISTORY)
    assert system.endswith(
        "Then you must make the next choice. You may output a distribution over the 5 choices "
        'formatted EXACTLY like "blue:n1,green:n2,red:n3,yellow:n4,purple:n5". You must provide your '
        "final answer immediately within the tags <Answer>DIST</Answer> where DIST is the distribution "
        "in the format specified above and with no text explanation."
    )
    assert user.endswith(
        "Which button will you choose next? Remember, YOU MUST provide your final answer within the "
        "tags <Answer>DIST</Answer> where DIST is formatted like "
        '"blue:n1,green:n2,red:n3,yellow:n4,purple:n5".'
    )
    assert "COLOR" not in system + user


def test_distribution_output_with_cot() -> None:
    system, user = render("BSSC~D", history=SUMMARY_HISTORY)
    assert system.endswith(
        'formatted EXACTLY like "blue:n1,green:n2,red:n3,yellow:n4,purple:n5". Let\'s think step by '
        "step to make sure we make a good choice. Then, you must provide your final answer within the "
        "tags <Answer>DIST</Answer> where DIST is the distribution in the format specified above."
    )
    assert user.endswith(
        '"blue:n1,green:n2,red:n3,yellow:n4,purple:n5". Let\'s think step by step to make sure we make '
        "a good choice."
    )


def test_advertisements_neutral_raw() -> None:
    system, user = render("ANRN0", history=[(1, 1), (0, 0), (2, 1)])
    assert system == (
        "You are recommendation engine that chooses advertisements to display to users when they "
        "visit your webpage. There are 5 advertisements you can choose from, named A, B, C, D, E. When "
        "a user visits the webpage you can choose an advertisement to display and you will observe "
        "whether the user clicks on the ad or not. You model this by assuming that each advertisement "
        "has a certain click rate and users click on advertisements with their corresponding rates.\n"
        "\n"
        "You have a budget of 10 users to interact with and your goal is to maximize the total number "
        "of clicks during this process.\n"
        "\n"
        "When each user visits the webpage, I will show you the data you have collected so far.\n"
        "\n"
        "Then you must choose which advertisement to display. You must provide your final answer "
        "immediately within the tags <Answer>AD</Answer> where AD is one of A, B, C, D, E and with no "
        "text explanation."
    )
    assert user == (
        "So far you have interacted with 3 users. Here is the data you have collected:\n"
        "User 1: advertisement B, clicked\n"
        "User 2: advertisement A, did not click\n"
        "User 3: advertisement C, clicked\n"
        "\n"
        "Which advertisement will you choose next? Remember, YOU MUST provide your final answer within "
        "the tags <Answer>AD</Answer> where AD is one of A, B, C, D, E."
    )


def test_advertisements_suggestive_summarized_reinforced_cot() -> None:
    system, user = render("ASSC~0", history=[(0, 1), (0, 0), (1, 1)])
    paragraphs = system.split("\n\n")
    assert len(paragraphs) == 5
    assert paragraphs[2].startswith("A good strategy to optimize for clicks in these situations requires")
    assert paragraphs[3] == (
        "When each user visits the webpage, I will show you a summary of the data you have collected so far."
    )
    assert paragraphs[4] == (
        "Then you must choose which advertisement to display. Let's think step by step to make sure we "
        "make a good choice. You must provide your final answer within the tags <Answer>AD</Answer> "
        "where AD is one of A, B, C, D, E."
    )
    assert user == (
        "So far you have interacted with 3 users. Here is a summary of the data you have collected:\n"
        "Advertisement A was shown to 2 users with an estimated click rate of 0.50\n"
        "Advertisement B was shown to 1 users with an estimated click rate of 1.00\n"
        "Advertisement C has not been shown\n"
        "Advertisement D has not been shown\n"
        "Advertisement E has not been shown\n"
        "\n"
        "Which advertisement will you choose next? Remember, YOU MUST provide your final answer within "
        "the tags <Answer>AD</Answer> where AD is one of A, B, C, D, E. Let's think step by step to make "
        "sure we make a good choice."
    )


def test_neutral_advertisements_omit_the_strategy_paragraph() -> None:
    system, _ = render("ANSN0")
    assert "good strategy" not in system
    assert "exploration" not in system


def test_distribution_example_for_advertisements() -> None:
    system, _ = render("ANSND", k=3)
    assert (
        'You may output a distribution over the 3 choices formatted EXACTLY like "A:n1,B:n2,C:n3".' in system
    )


@pytest.mark.parametrize("code", ALL_CODES)
@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_every_design_renders(code: str, k: int) -> None:
    history = [(t % k, t % 2) for t in range(7)]
    system, user = render(code, k=k, horizon=13, history=history)
    names = arm_names(code[0], k)
    assert ", ".join(names) in system
    for name in names:
        # Word boundaries: ad letters such as "A" also occur inside ordinary words.
        assert re.search(rf"\b{re.escape(name)}\b", user), name
    assert f"{k} {'buttons' if code[0] == 'B' else 'advertisements'}" in system
    assert "13 time steps" in system or "budget of 13 users" in system
    if code.endswith("D"):
        assert "<Answer>DIST</Answer>" in system and "<Answer>DIST</Answer>" in user
        example = ",".join(f"{n}:n{i + 1}" for i, n in enumerate(names))
        assert f'EXACTLY like "{example}".' in system and f'where DIST is formatted like "{example}".' in user
    else:
        assert "DIST" not in system + user
    cot = DesignSpec.parse(code).cot
    assert ("no text explanation" in system) == (cot == "N")
    assert ("step by step" in system) == (cot != "N")
    assert ("step by step" in user) == (cot == "C~")
    for text in (system, user):
        assert text == text.strip()
        assert "\n\n\n" not in text
        assert "{{" not in text and "{%" not in text


# ------------------------------------------- defects of the notebook the project started from


def test_defect1_counts_stay_under_their_own_arm() -> None:
    """The notebook showed red's counts under green's name and green's under red's."""
    _, user = render("BNSN0", history=[(2, 1), (2, 0), (2, 1)])
    assert "red button: pressed 3 times with average reward 0.67" in user
    assert "green button: pressed 0 times\n" in user
    _, raw = render("BNRN0", history=[(2, 1), (2, 0)])
    assert "red button, reward 1\nred button, reward 0\n" in raw
    assert "green button," not in raw


def test_defect1_every_arm_alone_is_shown_under_its_name() -> None:
    for arm, name in enumerate(COLOURS5):
        _, user = render("BNSN0", history=[(arm, 1)])
        assert f"{name} button: pressed 1 times with average reward 1.00" in user
        assert user.count("pressed 0 times") == 4


def test_defect2_nothing_hard_coded_and_two_decimals() -> None:
    system, user = render("BSSC~0", k=3, horizon=7, history=[(0, 1), (0, 0), (0, 0), (1, 1), (1, 1), (1, 0)])
    assert "3 buttons labeled blue, green, red." in system
    assert "7 time steps" in system
    for hard_coded in ("5 buttons", "10 time steps", "yellow", "purple"):
        assert hard_coded not in system + user
    assert "blue button: pressed 3 times with average reward 0.33\n" in user
    assert "green button: pressed 3 times with average reward 0.67\n" in user
    assert not re.search(r"\d\.\d{3}", user)


def test_defect4_each_paper_design_is_consistent() -> None:
    """The notebook mixed "no text explanation" with "Let's think step by step"."""
    system, user = render("BNRN0", history=RAW_HISTORY)
    assert "step by step" not in system and "step by step" not in user
    system, user = render("BSSC~0", history=SUMMARY_HISTORY)
    assert "no text explanation" not in system and "no text explanation" not in user
    assert "immediately" not in system


# ------------------------------------------------------------------ names, inputs, grammar


def test_arm_names() -> None:
    assert arm_names("B", 5) == COLOURS5
    assert arm_names("B", 20) == BUTTON_COLOURS
    assert arm_names("B", 7)[5:] == ("orange", "pink")
    assert arm_names("A", 4) == ("A", "B", "C", "D")
    assert arm_names("A", 26)[-1] == "Z"


@pytest.mark.parametrize(
    ("scenario", "k", "match"),
    [("B", 21, "only 20 button colours"), ("A", 27, "only 26"), ("X", 3, "scenario"), ("B", 0, "k")],
)
def test_arm_names_rejects(scenario: str, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        arm_names(scenario, k)


@pytest.mark.parametrize(
    "history",
    [[(5, 1)], [(-1, 0)], [(0, 2)], [(0.5, 1)], [("0", 1)], [(0, 1, 2)]],
)
def test_render_rejects_bad_history(history: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError, match=r"history\[0\]"):
        render_messages(DesignSpec(), COLOURS5, 10, history)


def test_render_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="names"):
        render_messages(DesignSpec(), (), 10, [])
    with pytest.raises(ValueError, match="names"):
        render_messages(DesignSpec(), ("red", "Red"), 10, [])
    with pytest.raises(ValueError, match="horizon"):
        render_messages(DesignSpec(), COLOURS5, 0, [])


def test_numpy_integers_in_history() -> None:
    np = pytest.importorskip("numpy")
    hist = [(np.int64(a), np.int8(r)) for a, r in PAPER_HISTORY]
    assert render_messages(DesignSpec(), COLOURS5, 10, hist)[1]["content"] == BNRN0_USER


def test_answer_grammar() -> None:
    assert answer_grammar(COLOURS5) == (
        'root ::= "<Answer>" ("blue" | "green" | "red" | "yellow" | "purple") "</Answer>"'
    )
    assert answer_grammar(('a"b', "c\\d")) == r'root ::= "<Answer>" ("a\"b" | "c\\d") "</Answer>"'


def test_templates_ship_with_the_package() -> None:
    import bandit_bench.core.prompts as prompts

    folder = Path(prompts.__file__).parent
    assert (folder / "system.j2").is_file() and (folder / "user.j2").is_file()


def test_importing_prompts_does_not_import_jinja2() -> None:
    code = "import sys, bandit_bench.core.prompts; sys.exit('jinja2' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_harness_history_renders_as_the_list_it_is_and_is_checked_once_changed() -> None:
    from bandit_bench.core.episode import History

    names = arm_names("B", 5)
    pairs = [(0, 1), (3, 0), (3, 1), (4, 0), (0, 0)]
    for code in ("BNRN0", "BSSC~0"):
        design = DesignSpec.parse(code)
        history = History(5, 10)
        for t, (arm, reward) in enumerate(pairs):
            history.push(arm, reward)
            # The harness's checked rows give the very prompt a plain list gives.
            assert history.rows(5) is not None
            assert render_messages(design, names, 10, history) == render_messages(
                design, names, 10, pairs[: t + 1]
            )
    # An agent may change its list: the rows are then no longer used, and the list is checked.
    history[1] = (7, 0)
    assert history.rows(5) is None
    with pytest.raises(ValueError, match=r"history\[1\]: arm 7 is out of range 0..4"):
        render_messages(DesignSpec.parse("BNRN0"), names, 10, history)
    # A pair the harness would never play is kept in the list and checked there too.
    odd = History(5, 10)
    odd.push(0, 2)
    assert odd.rows(5) is None
    with pytest.raises(ValueError, match=r"history\[0\]: reward 2 is not 0 or 1"):
        render_messages(DesignSpec.parse("BNRN0"), names, 10, odd)
