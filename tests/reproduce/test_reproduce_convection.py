"""``pinnlab reproduce convection --quick`` end to end, through the command as a user runs it (a
module of its own so that it runs beside tests/reproduce/test_reproduce.py's seed study)."""

from __future__ import annotations

import pytest

from tests.reproduce.test_reproduce import claims, quick_through_the_cli, store  # noqa: F401 (store: a module fixture, one per module)

# the quick study trains 8 runs (about 45 s): a slow test, as every reproduction's quick variant
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def convection_quick(store):
    """Through the CLI, as a user runs it: ``pinnlab reproduce convection --quick --json``."""
    d, uri = store
    return quick_through_the_cli("convection", d / "conv", uri)


def test_convection_quick_plain_small_beta_is_accurate_and_curriculum_warm_starts(convection_quick):
    runs = convection_quick["parts"]["runs"]
    plain1 = [r for r in runs if r["beta"] == 1.0 and r["method"] == "plain"]
    assert plain1 and all(r["error"] < 0.05 for r in plain1)
    curriculum = [r for r in runs if r["method"] == "curriculum" and r["beta"] > 1]
    assert {r["beta"] for r in curriculum} == {10.0, 20.0}
    assert claims(convection_quick, "beta=1")[0]["reproduced"] == "yes"
    for c in convection_quick["claims"]:
        assert c["reproduced"] in ("yes", "partly", "no", "n/a") and c["ours"] and c["source"]
    assert [f.rsplit("/", 1)[-1] for f in convection_quick["figures"]] == [
        "convection_error.png",
        "convection_solutions.png",
    ]
