"""The mapped consume holds the day, not each part, to the share of undecodable records."""

from __future__ import annotations

import pytest

from airflow_provider_logproc.operators.kafka import DeadLetterThresholdError
from airflow_provider_logproc.pipeline_mapped import check_day_bad_share


def test_a_day_within_the_share_passes_whatever_one_part_held():
    # One part all undecodable (a misbehaving producer's partition), the day at 4%: passes, as the
    # single task reading the whole day would.
    check_day_bad_share(good=960, undecodable=40, dead_letter_uri="abfs://s/groups/raw.dead-letter.jsonl")
    check_day_bad_share(good=0, undecodable=0, dead_letter_uri=None)


def test_a_day_past_the_share_fails_naming_the_counts_and_the_kept_aside_file():
    with pytest.raises(DeadLetterThresholdError, match=r"60 of 1000 records \(6.00%\).*raw.dead-letter.jsonl"):
        check_day_bad_share(good=940, undecodable=60, dead_letter_uri="abfs://s/groups/raw.dead-letter.jsonl")
