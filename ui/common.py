"""What every page shares: the workspace (one per process), pickers for corpus and run, error display."""
from __future__ import annotations

import contextlib
import os
import re
import threading
import time

import streamlit as st

from hce_engine import HCEError, Run, Workspace
from hce_engine.plotting import fmt_duration as fmt_duration  # also re-exported for pages

#: Seconds after the app opened its workspace before UMAP compiles, when every finished run already has its map.
WARM_DELAY_S = 120.0


@st.cache_resource(show_spinner=False)
def get_workspace() -> Workspace:
    """The process-wide workspace (``$HCE_WORKSPACE``); all tabs and pages share it and its jobs."""
    ws = Workspace(os.environ.get("HCE_WORKSPACE"))
    encoding = []
    if os.environ.get("HCE_AUTO_ENCODE") == "1":  # set by `hce app --sample`: make corpora searchable at once
        encoding = [ws.start_encode(c["name"]) for c in ws.corpora() if c["runs"] == 0]
    if os.environ.get("HCE_WARM_UMAP", "1") == "1":
        from hce_engine.projection import warm_up
        # every run has its map: nothing needs UMAP now, so its compile (a core and the GIL for about a minute)
        # waits, and a fresh app's first pages (a million-document map read cold) do not share the CPU with it
        delay = 0.0 if encoding or ws.maps_missing() else WARM_DELAY_S

        def warm_after_encoding() -> None:
            # UMAP's compile takes a core for about a minute: after the first encode, not beside it (on 2 cores
            # it halved the encoder's speed and delayed the first tree by half a minute)
            for run_id in encoding:
                ws.jobs.wait(run_id)
            time.sleep(delay)
            warm_up()

        threading.Thread(target=warm_after_encoding, name="umap-warm-up", daemon=True).start()
    return ws


@contextlib.contextmanager
def friendly_errors(action: str = ""):
    """Show engine errors (and unexpected ones) as readable messages instead of tracebacks."""
    try:
        yield
    except HCEError as exc:
        st.error(md_escape(f"{action + ': ' if action else ''}{exc}"))
    except InterruptedError:
        st.warning(md_escape(f"{action or 'the operation'} was cancelled"))
    except Exception as exc:  # noqa: BLE001 - last line of defence for the page
        st.error(md_escape(f"{action + ': ' if action else ''}unexpected error: {type(exc).__name__}: {exc}"))


def save_upload(upload, folder: str, fallback: str) -> str:
    """Write an uploaded file into ``folder`` (a fresh temp folder) and return its path. The upload's name is
    data, not a path: only its last component is kept, control characters replaced and leading dots dropped
    (``fallback`` when nothing is left); everything else stays, so error messages name the file as the user knows
    it (and show it as text: ``friendly_errors`` escapes markdown)."""
    name = os.path.basename(str(upload.name or "").replace("\\", "/"))
    name = re.sub(r"[\x00-\x1f\x7f]", "_", name).lstrip(". ").rstrip()
    stem, ext = os.path.splitext(name or fallback)
    path = os.path.join(folder, stem[:100] + ext[:10])
    with open(path, "wb") as f:
        f.write(upload.getbuffer())
    return path


def pick_corpus(key: str = "corpus") -> str | None:
    """Sidebar-synchronised corpus picker; None (with a hint) when the workspace has none."""
    ws = get_workspace()
    names = [c["name"] for c in ws.corpora()]
    if not names:
        st.info("No corpus yet. Open **Corpus** to load the bundled sample with one click, or upload your own.")
        return None
    current = st.session_state.get("corpus")
    index = names.index(current) if current in names else len(names) - 1
    name = st.selectbox("Corpus", names, index=index, key=f"{key}_select")
    st.session_state["corpus"] = name
    return name


# -- shared by the Corpus, Train, Search and Runs pages ---------------------------------------------
#: Engine progress stages in words.
STAGES = {"encode": "encoding the documents", "tree": "building the tree", "train": "training",
          "validate": "validating on held-out queries", "baseline encode": "encoding with the starting encoder",
          "baseline tree": "building the starting tree", "final encode": "encoding with the trained encoder",
          "evaluate": "evaluating on the test split", "queued": "waiting to start"}


def md_escape(text: str) -> str:
    """Text shown inside st.markdown without being read as markdown (titles like ``*`` or ``[foo]``)."""
    return "".join("\\" + c if c in "\\`*_{}[]<>()#+-.!|~$:" else c for c in str(text))


def baseline_run(corpus: str) -> int | None:
    """The corpus's starting encoder: its newest finished zero-shot (baseline) run."""
    done = get_workspace().runs(corpus, status="done", kind="baseline")
    return done[-1].run_id if done else None


def active_runs(corpus: str | None = None, kind: str | None = None) -> list[Run]:
    """Runs still queued or running (per the database, so a reloaded page finds them)."""
    return [r for r in get_workspace().runs(corpus, kind=kind) if r.status.active]


def progress_panel(run_id: int, key: str) -> None:
    """Live progress of a background run (stage, counts, ETA) with a cancel button.

    Call it inside an ``st.fragment(run_every=...)``; when the run ends it reruns the whole page once.
    """
    ws = get_workspace()
    run = ws.run(run_id)
    if not run.status.active:
        st.rerun()
    live = ws.run_progress(run_id)
    if live is None:
        st.info(f"Run #{run_id} is {run.status} (no live progress in this process).")
        return
    text = f"Run #{run_id} · {STAGES.get(live.stage, live.stage)}"
    if live.total:
        text += f" {live.done:,}/{live.total:,}"
    if live.eta_s is not None:
        text += f" · about {fmt_duration(live.eta_s)} left"
    if live.message:
        text += f" · {live.message}"
    st.progress(live.fraction, text=text)
    if ws.cancelling(run_id):
        st.caption("Cancelling… it stops at the next batch.")
    elif st.button("Cancel", key=f"{key}_cancel_{run_id}"):
        ws.cancel(run_id)
        st.caption("Cancelling… it stops at the next batch.")


@st.fragment(run_every=1.5)
def live_progress(run_id: int, key: str) -> None:
    """:func:`progress_panel` refreshed every 1.5 s on its own (the rest of the page stays put)."""
    progress_panel(run_id, key)


def not_encoded_yet(corpus: str, key: str, what: str) -> None:
    """For a page that needs a finished run of ``corpus`` and has none: the first encode's live progress while
    it runs (the page redraws itself when it ends), else where to start it. ``what``: what the page will show."""
    running = active_runs(corpus, kind="baseline")
    if running:
        st.info(f"The corpus is being encoded with the starting encoder (vectors, then the tree); {what} "
                "when it is done.")
        live_progress(running[-1].run_id, key=key)
    else:
        st.info(f"No finished run yet: the **Corpus** page encodes the corpus (the zero-shot baseline run); {what} "
                "then.")


def pick_run_and_compare(ws, runs: list[Run], run_col, cmp_col, run_text: str, cmp_text: str,
                         key: str) -> tuple[int, int | None]:
    """A run picker (default: the latest trained run) and, beside it, a second run to compare with
    (default: its baseline; 0 stands for none since run ids start at 1). Returns (run id, compare or None)."""
    from hce_engine import views
    labels = {r.run_id: r.label for r in runs}
    ids = list(labels)
    trained = [r.run_id for r in runs if r.kind == "train" and r.verdict != "worse"] or \
        [r.run_id for r in runs if r.kind == "train"]  # a worse run is the default only when it is the only one
    run_id = run_col.selectbox(run_text, ids, index=ids.index(trained[-1]) if trained else len(ids) - 1,
                               format_func=labels.__getitem__, key=f"{key}_run")
    default = views.default_compare_run(ws, run_id)
    opts = [0] + [i for i in ids if i != run_id]
    compare = cmp_col.selectbox(cmp_text, opts, index=opts.index(default) if default in opts else 0,
                                format_func=lambda i: labels.get(i, "— none —"),
                                key=f"{key}_compare_{run_id}") or None
    return run_id, compare


# -- shared by the Siblings and Learn pages ---------------------------------------------------------
@st.cache_data(max_entries=64, ttl=900, show_spinner=False)
def cached_teacher(_ws, workspace: str, run_id: int, doc_id: int | None, max_candidates: int = 16) -> dict:
    """:func:`hce_engine.views.teacher_view` of ``run_id`` for ``doc_id`` (None: its first example), cached."""
    from hce_engine import views
    return views.teacher_view(_ws, run_id, doc_id=doc_id, max_candidates=max_candidates)


def show_teacher_example(tv: dict, run_id: int, key: str, source_note: str = "") -> None:
    """A teacher view drawn: the pseudo-query, the teacher-vs-student figure, its one-line reading, the table."""
    from hce_engine.plotting import teacher as teacher_figs
    st.markdown(f"**Pseudo-query** (a sentence of *{md_escape(tv['source']['title'] or tv['source']['ext_id'])}*"
                f"{source_note}): “{md_escape(tv['query'])}”")
    st.plotly_chart(teacher_figs.teacher_figure(tv, f"student before #{tv['baseline_run']}",
                                                f"student after #{run_id}"), key=key)
    st.markdown(teacher_figs.teacher_summary(tv))
    st.dataframe(teacher_figs.teacher_table(tv), hide_index=True)
