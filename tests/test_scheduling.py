"""The order test files reach the xdist workers in (:mod:`tests.scheduling`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import scheduling
from tests.scheduling import WEIGHTS, Recorder, estimate, load_weights, longest_first


class TestLongestFirst:
    """Files go out heaviest first, by the seconds the table gives them; a file's tests stay
    together and in their order; nothing is added or dropped."""

    def test_heaviest_file_first_tests_in_their_order(self) -> None:
        weights = {"a.py": (1.0, 2), "b.py": (60.0, 1), "c.py": (5.0, 1)}
        ids = ["a.py::t1", "b.py::t1", "a.py::t2", "c.py::t1"]
        assert longest_first(ids, weights) == ["b.py::t1", "c.py::t1", "a.py::t1", "a.py::t2"]

    def test_a_file_weighs_in_proportion_to_its_tests(self) -> None:
        """A file that gained a parametrization (a PostgreSQL run of each test) weighs more; a
        file the table does not know is estimated from its number of tests."""
        weights = {"pg.py": (10.0, 5)}
        assert estimate(weights, "pg.py", 10) == 20.0
        assert estimate(weights, "new.py", 3) == 3 * scheduling.UNKNOWN_PER_TEST
        ids = [f"new.py::t{n}" for n in range(3)] + [f"pg.py::t{n}" for n in range(10)]
        assert longest_first(ids, weights)[0] == "pg.py::t0"

    def test_equal_weights_keep_the_collection_order(self) -> None:
        ids = ["x.py::t", "y.py::t", "z.py::t"]
        assert longest_first(ids, {}) == ids


class TestTheTable:
    """The checked-in table reads, names test files, and is rewritten by ``--file-weights``."""

    def test_checked_in_table(self) -> None:
        weights = load_weights()
        assert weights, f"{WEIGHTS} is empty"
        root = WEIGHTS.parent.parent
        assert all(f.startswith("tests/") and f.endswith(".py") for f in weights)
        assert sum((root / f).exists() for f in weights) > len(weights) // 2
        assert all(seconds >= 0 and tests >= 0 for seconds, tests in weights.values())

    def test_recorder_merges_what_ran(self, tmp_path: Path) -> None:
        table = tmp_path / "weights.json"
        table.write_text(json.dumps({"tests/kept.py": [3.0, 2], "tests/ran.py": [9.0, 1]}))
        recorder = Recorder(table)
        for when, seconds in (("setup", 0.5), ("call", 2.0), ("teardown", 0.25)):
            recorder.pytest_runtest_logreport(
                pytest.TestReport(
                    "tests/ran.py::t", ("", 0, ""), {}, "passed", None, when, [], seconds
                )
            )
        recorder.pytest_sessionfinish()
        assert load_weights(table) == {"tests/kept.py": (3.0, 2), "tests/ran.py": (2.75, 1)}
