"""Batched scoring of concurrent requests, and the reason given for each recommendation."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tests.unit.serving.test_catalog import event

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.records import TYPE_BOOKING, TYPE_SAVE, TYPE_VIEW, InteractionLog
from eventrec.serving.app import _reasons
from eventrec.serving.catalog import Catalog
from eventrec.serving.scoring import BatchScorer, score_rows
from eventrec.serving.state import ServingState

NAMES = ["a", "b", "c", "d", "e"]
# Events a-d are in the model; e is newer than it (content vector only).
ITEM_FACTORS = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 0.9]], dtype=np.float32)
CATALOG_FACTORS = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 0.9], [0.5, 0.5]], dtype=np.float32)


def make_state() -> ServingState:
    catalog = Catalog.from_documents(
        {n: event(n, "Colombo", "music", 100, 20, title=f"title {n}") for n in NAMES}
    )
    model: Any = SimpleNamespace(
        item_factors=ITEM_FACTORS,
        column_scale=np.ones(4, dtype=np.float32),
        model=SimpleNamespace(weights_=InteractionWeights()),
    )
    return ServingState(
        catalog=catalog,
        model=model,
        catalog_factors=CATALOG_FACTORS,
        catalog_model_index=np.array([0, 1, 2, 3, -1]),
        trending=np.zeros(len(NAMES), dtype=np.float32),
        store_event_ids=NAMES,
        catalog_version=1,
        model_version="v1",
        built_at=0.0,
    )


def row(events: list[int], kinds: list[int]) -> np.ndarray:
    n = len(events)
    return InteractionLog.from_columns(
        user=np.zeros(n, dtype=np.int32),
        event=np.array(events),
        kind=np.array(kinds),
        value=np.ones(n, dtype=np.int64),
        time=np.arange(n) + 1_800_000_000,
        aux=np.zeros(n, dtype=np.int64),
    ).records


ROWS = [
    row([0], [TYPE_BOOKING]),
    row([1, 3], [TYPE_VIEW, TYPE_SAVE]),
    row([4], [TYPE_VIEW]),  # only an event newer than the model: its content vector
]


def test_scores_of_a_batch_equal_each_user_alone() -> None:
    state = make_state()
    together = score_rows(state, ROWS)
    for records, scored in zip(ROWS, together, strict=True):
        (alone,) = score_rows(state, [records])
        assert scored.scores is not None
        assert alone.scores is not None
        np.testing.assert_allclose(scored.scores, alone.scores, rtol=1e-6)
        np.testing.assert_allclose(scored.scores, CATALOG_FACTORS @ scored.vector, rtol=1e-6)
    # The booking of a points the user at a and c; the view of e through e's content.
    first = together[0].scores
    assert first is not None
    assert {int(i) for i in np.argsort(-first)[:2]} == {0, 2}
    assert together[0].hidden.tolist() == [0]


def test_concurrent_requests_share_one_product() -> None:
    state = make_state()

    async def main() -> tuple[BatchScorer, list[Any]]:
        scorer = BatchScorer(max_wait=5.0)

        async def request(records: np.ndarray, delay: float) -> Any:
            with scorer.reading():
                await asyncio.sleep(delay)  # the row on its way from Redis
            return await scorer.score(state, records)

        results = await asyncio.gather(*(request(r, 0.01 * i) for i, r in enumerate(ROWS)))
        return scorer, list(results)

    scorer, results = asyncio.run(main())
    # The first row waited for the two still being read, not for max_wait.
    assert (scorer.batches, scorer.scored) == (1, 3)
    for records, scored in zip(ROWS, results, strict=True):
        (alone,) = score_rows(state, [records])
        np.testing.assert_allclose(scored.scores, alone.scores, rtol=1e-6)


def test_a_slow_read_holds_the_batch_no_longer_than_max_wait() -> None:
    state = make_state()

    async def main() -> tuple[BatchScorer, float]:
        scorer = BatchScorer(max_wait=0.05)
        stuck = asyncio.Event()

        async def slow() -> None:
            with scorer.reading():
                await stuck.wait()

        waiting = asyncio.create_task(slow())
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await scorer.score(state, ROWS[0])
        took = loop.time() - started
        stuck.set()
        await waiting
        return scorer, took

    scorer, took = asyncio.run(main())
    assert scorer.batches == 1
    assert 0.04 <= took < 1.0


def test_a_failing_product_fails_its_requests_not_the_scorer() -> None:
    state = make_state()
    broken = make_state()
    broken.catalog_factors_t = np.zeros((3, 5), dtype=np.float32)  # wrong shape

    async def main() -> tuple[Any, Any]:
        scorer = BatchScorer()
        with pytest.raises(ValueError, match="matmul"):
            await scorer.score(broken, ROWS[0])
        return await scorer.score(state, ROWS[0]), scorer

    scored, scorer = asyncio.run(main())
    assert scored.scores is not None
    assert scorer.batches == 2


def test_reasons_name_the_interaction_that_contributed_most() -> None:
    state = make_state()
    strongest = {0: (TYPE_BOOKING, 1), 1: (TYPE_VIEW, 2)}
    reasons = _reasons(state, [2, 3, 0, 4], strongest)
    assert reasons == [
        "because you booked title a",  # c is close to a
        "because you viewed title b",  # d is close to b
        "because you viewed title b",  # a itself: another event is named
        "new in Colombo, like events you booked",  # e is newer than the model
    ]
    assert _reasons(state, [0], {0: (TYPE_SAVE, 1)}) == ["you saved this event"]
    assert _reasons(state, [1], {}) == ["recommended for you"]
