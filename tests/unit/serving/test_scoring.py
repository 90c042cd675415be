"""Batched scoring of concurrent requests, and the reason given for each recommendation."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.serving.test_catalog import event

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.records import TYPE_BOOKING, TYPE_SAVE, TYPE_VIEW, InteractionLog
from eventrec.serving.catalog import Catalog, Filters, top_positions
from eventrec.serving.items import explain
from eventrec.serving.scoring import DIRECT_LIMIT, BatchScorer, best_eligible
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


class FakeRows:
    """Rows by user id, read after ``delay`` seconds; records every batch it is asked for."""

    def __init__(self, rows: dict[str, np.ndarray], delay: float = 0.0) -> None:
        self.rows = rows
        self.delay = delay
        self.reads: list[list[str]] = []
        self.fail: Exception | None = None

    async def __call__(self, user_ids: list[str], state: ServingState) -> list[Any]:
        self.reads.append(list(user_ids))
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [self.rows.get(user_id) for user_id in user_ids]


USERS = {f"u{i}": records for i, records in enumerate(ROWS)}


def state_with_factors(factors: np.ndarray) -> ServingState:
    """A state whose only part used by ``best_eligible`` is the catalog's vectors."""
    catalog: Any = None
    return ServingState(
        catalog=catalog,
        model=None,
        catalog_factors=factors,
        catalog_model_index=np.arange(len(factors)),
        trending=np.zeros(len(factors), dtype=np.float32),
        store_event_ids=[],
        catalog_version=1,
        model_version="v1",
        built_at=0.0,
    )


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_events=st.sampled_from([50, 5_000, 30_000]),
    users=st.integers(1, 6),
    eligible_share=st.sampled_from([0.0, 0.01, 0.1, 0.9, 1.0]),
    ties=st.booleans(),
    skew=st.sampled_from([0.0, 1.0, 3.0]),
)
def test_pruned_search_equals_scoring_every_event(
    seed: int, n_events: int, users: int, eligible_share: float, ties: bool, skew: float
) -> None:
    """Exactly the full product's top-k under each mask, ties to the lower position."""
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: many equal scores and equal norms
        factors = rng.integers(-2, 3, (n_events, 8)).astype(np.float32)
        vectors = rng.integers(-2, 3, (users, 8)).astype(np.float32)
    else:  # norms spread like a factor model's (popular events have long vectors)
        lengths = rng.pareto(1.0 + skew, n_events) + 0.01 if skew else np.ones(n_events)
        factors = (rng.standard_normal((n_events, 8)) * lengths[:, None]).astype(np.float32)
        vectors = rng.standard_normal((users, 8)).astype(np.float32)
    masks = [rng.random(n_events) < eligible_share for _ in range(users)]
    limits = [int(limit) for limit in rng.integers(1, 51, users)]
    found, scanned = best_eligible(state_with_factors(factors), vectors, masks, limits)
    assert scanned <= users * n_events
    for user in range(users):
        full = factors @ vectors[user]
        expected = top_positions(full, masks[user], limits[user])
        positions, scores = found[user]
        assert positions.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, full[expected], rtol=1e-5, atol=1e-5)


def test_pruning_scores_a_small_part_of_a_skewed_catalog() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.pareto(1.0, 50_000) + 0.01
    factors = (rng.standard_normal((50_000, 16)) * lengths[:, None]).astype(np.float32)
    vectors = rng.standard_normal((8, 16)).astype(np.float32)
    masks = [np.ones(50_000, dtype=bool)] * 8
    _, scanned = best_eligible(state_with_factors(factors), vectors, masks, [10] * 8)
    assert scanned < 0.2 * 8 * 50_000
    # A filter leaving few events scores just those.
    narrow = np.zeros(50_000, dtype=bool)
    narrow[:DIRECT_LIMIT] = True
    _, scanned = best_eligible(state_with_factors(factors), vectors[:1], [narrow], [10])
    assert scanned == DIRECT_LIMIT


def ask(scorer: BatchScorer, state: ServingState, user: str, limit: int = 3) -> Any:
    return scorer.recommend(state, user, Filters(), limit)


def test_concurrent_requests_share_one_read_and_one_product() -> None:
    state = make_state()
    reader = FakeRows(USERS, delay=0.01)

    async def main() -> tuple[BatchScorer, list[Any]]:
        scorer = BatchScorer(reader)
        answers = await asyncio.gather(*(ask(scorer, state, u) for u in [*USERS, "nobody"]))
        return scorer, list(answers)

    scorer, answers = asyncio.run(main())
    assert reader.reads == [["u0", "u1", "u2", "nobody"]]
    assert (scorer.batches, scorer.scored) == (1, 4)
    for records, answer in zip(ROWS, answers[:3], strict=True):
        assert answer.records is records
        vector, hidden, _ = state.user_vector(records)
        full = CATALOG_FACTORS @ vector
        mask = state.catalog.eligible(Filters(), time.time())
        mask[hidden] = False
        assert answer.positions.tolist() == top_positions(full, mask, 3).tolist()
        np.testing.assert_allclose(answer.scores, full[answer.positions], rtol=1e-6)
    # The booking of a hides a; c, close to a, comes first.
    assert answers[0].positions.tolist()[0] == 2
    assert 0 not in answers[0].positions.tolist()
    assert (answers[3].records, answers[3].positions) == (None, None)


def test_requests_arriving_during_a_read_form_the_next_batch() -> None:
    state = make_state()
    reader = FakeRows(USERS, delay=0.05)

    async def main() -> BatchScorer:
        scorer = BatchScorer(reader)
        first = ask(scorer, state, "u0")
        await asyncio.sleep(0.01)  # the first batch is waiting on its read
        await asyncio.gather(first, ask(scorer, state, "u1"), ask(scorer, state, "u2"))
        return scorer

    scorer = asyncio.run(main())
    assert reader.reads == [["u0"], ["u1", "u2"]]
    assert scorer.batches == 2


def test_rows_wait_for_reads_in_flight_but_no_longer_than_max_wait() -> None:
    state = make_state()

    class SlowFor(FakeRows):
        async def __call__(self, user_ids: list[str], state: ServingState) -> list[Any]:
            self.delay = 0.2 if user_ids == ["u2"] else 0.01
            return await super().__call__(user_ids, state)

    async def main(max_wait: float) -> tuple[BatchScorer, float]:
        scorer = BatchScorer(SlowFor(USERS), max_wait=max_wait)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = ask(scorer, state, "u0")
        await asyncio.sleep(0)  # the first read starts alone
        second = ask(scorer, state, "u1")
        await asyncio.sleep(0)
        third = ask(scorer, state, "u2")  # slow
        await asyncio.gather(first, second)
        took = loop.time() - started
        await third
        return scorer, took

    # u0 and u1 arrive within 10 ms and share a product; u2 is 200 ms away: not waited for.
    scorer, took = asyncio.run(main(max_wait=0.05))
    assert scorer.batches == 2
    assert took < 0.15
    # With a long max_wait everything waits for u2 and one product answers all three.
    scorer, took = asyncio.run(main(max_wait=5.0))
    assert scorer.batches == 1
    assert took >= 0.2


def test_filters_and_hidden_viewed_events_apply_inside_the_batch() -> None:
    state = make_state()

    async def main() -> list[Any]:
        scorer = BatchScorer(FakeRows(USERS), hide_viewed=True)
        return [
            await scorer.recommend(state, "u1", Filters(exclude=frozenset({"c"})), 5),
            await scorer.recommend(state, "u1", Filters(min_price=500), 5),
        ]

    excluded, priced_out = asyncio.run(main())
    # u1 viewed b and saved d: both hidden as viewed; c excluded by the request.
    assert {NAMES[p] for p in excluded.positions.tolist()} == {"a", "e"}
    assert priced_out.positions.tolist() == []
    assert priced_out.mask is not None
    assert not priced_out.mask.any()


def test_rows_shorter_than_min_records_are_not_scored() -> None:
    state = make_state()

    async def main() -> list[Any]:
        scorer = BatchScorer(FakeRows(USERS), min_records=2)
        return list(await asyncio.gather(*(ask(scorer, state, u) for u in USERS)))

    answers = asyncio.run(main())
    assert [answer.positions is not None for answer in answers] == [False, True, False]
    assert answers[0].records is ROWS[0]
    # Too few records to personalise, enough to hide what was booked (a) from trending.
    assert answers[0].mask is not None
    assert answers[0].mask.tolist() == [False, True, True, True, True]


def test_a_failing_batch_fails_its_requests_not_the_scorer() -> None:
    state = make_state()
    broken = make_state()
    broken.catalog_factors = np.zeros((5, 3), dtype=np.float32)  # wrong shape
    reader = FakeRows(USERS)

    async def main() -> tuple[Any, BatchScorer]:
        scorer = BatchScorer(reader)
        with pytest.raises(ValueError, match="matmul"):
            await ask(scorer, broken, "u1", limit=1)
        reader.fail = ConnectionError("redis went away")
        with pytest.raises(ConnectionError, match="went away"):
            await ask(scorer, state, "u0")
        reader.fail = None
        return await ask(scorer, state, "u0"), scorer

    answer, scorer = asyncio.run(main())
    assert answer.positions is not None
    # Scored batches: the broken product and the last one (the failed read scored nothing).
    assert scorer.batches == 2


def test_reasons_name_the_interaction_that_contributed_most() -> None:
    state = make_state()
    strongest = {0: (TYPE_BOOKING, 1), 1: (TYPE_VIEW, 2)}
    reasons = explain(state, [2, 3, 0, 4], strongest)
    assert reasons == [
        "because you booked title a",  # c is close to a
        "because you viewed title b",  # d is close to b
        "because you viewed title b",  # a itself: another event is named
        "new in Colombo, like events you booked",  # e is newer than the model
    ]
    assert explain(state, [0], {0: (TYPE_SAVE, 1)}) == ["you saved this event"]
    assert explain(state, [1], {}) == ["recommended for you"]
