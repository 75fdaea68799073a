"""The record-mode table: what each mode replays and records, read by the transport, the case
folder, the cost estimate and the runner alike."""

from __future__ import annotations

import pytest

from bandit_bench.recording.modes import REPLAYING_MODES, record_mode, requests_to_send


@pytest.mark.parametrize(
    ("mode", "no_cassette", "half_recorded", "complete"),
    [
        ("none", 0, 0, 0),
        ("once", 5, 0, 0),
        ("new_episodes", 5, 3, 0),
        ("all", 5, 5, 5),
        ("rewrite", 5, 5, 5),
    ],
)
def test_requests_each_mode_sends_for_an_episode_of_five_steps(mode, no_cassette, half_recorded, complete):
    policy = record_mode(mode)
    assert [requests_to_send(policy, recorded, 5) for recorded in (None, 2, 5)] == [
        no_cassette,
        half_recorded,
        complete,
    ]


def test_which_modes_replay_and_which_rewrite_the_folder() -> None:
    assert REPLAYING_MODES == ("none", "once", "new_episodes")
    modes = ("none", "once", "new_episodes", "all", "rewrite")
    assert [m for m in modes if record_mode(m).rewrites_folder] == ["rewrite"]
    assert [m for m in modes if record_mode(m).records_every_request] == ["all", "rewrite"]


def test_an_unknown_mode_is_refused_with_the_list() -> None:
    with pytest.raises(ValueError, match=r"record mode: got 'twice'; expected one of \('none', 'once', "):
        record_mode("twice")
