"""Property-based fuzzing of every importer: the only outcomes are a clean import or an InputError, and a
failed import leaves the workspace unchanged. ``HCE_FUZZ_EXAMPLES`` cases per importer (default 200);
``benchmarks/import_fuzz.py`` runs the long version and reports counts."""
from __future__ import annotations

import itertools
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_inputs import IMPORTERS, check_import, materialise
from hce_engine.workspace import Workspace

EXAMPLES = int(os.environ.get("HCE_FUZZ_EXAMPLES", "200"))


@pytest.fixture(scope="module")
def fuzz_workspace(tmp_path_factory, fake_model):
    ws = Workspace(str(tmp_path_factory.mktemp("fuzz") / "ws"), default_model=fake_model)
    yield ws
    ws.close()


@pytest.mark.filterwarnings("ignore::UserWarning")  # zipfile's "Duplicate name" while writing the cases
@pytest.mark.parametrize("importer", sorted(IMPORTERS))
def test_importer_fuzz(importer, fuzz_workspace):
    name, strategy = IMPORTERS[importer]
    counter = itertools.count()
    outcomes: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(content=strategy)
    def one(content):
        with tempfile.TemporaryDirectory() as root:
            outcome = check_import(fuzz_workspace, materialise(root, name, content), f"fuzz{next(counter)}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    one()
    assert sum(outcomes.values()) >= EXAMPLES // 2, outcomes
