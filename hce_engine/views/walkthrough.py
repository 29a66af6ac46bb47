"""The Learn walkthrough as data: its six steps' texts (a seventh, :data:`SELF_STEP`, when the trained run
learned from the self signal) and the runs and example it shows, for the Learn page and for its offline HTML
export (``hce_engine.plotting.export.learn_html``).

Texts are markdown templates; ``{names}`` are filled from :func:`walkthrough`'s dict (``branching``,
``n_leaves``, ``depth``, ``what``, ``level``).
"""
from __future__ import annotations

from . import default_compare_run, judged_queries, pseudo_queries, tree_overview
from .map import default_level

STEPS = ["1 · Embed", "2 · Cluster", "3 · A path", "4 · Siblings", "5 · The loss", "6 · After training"]
#: The step added when the trained run is a self-signal run (no labels: the engine's hybrid search teaches).
SELF_STEP = "7 · The self signal"

TEXT = {
    STEPS[0]: ("1 · Every document becomes a vector",
               "An encoder (a small transformer) reads each document, title and text, and outputs one vector. "
               "Documents about similar things get vectors pointing in similar directions, measured by **cosine "
               "similarity**. Search is then: encode the query, return the documents with the closest vectors. HCE "
               "changes *how the encoder is trained*, not how search works.\n\nBelow, every document is a point; "
               "UMAP squeezes the vectors into 2-D so that near vectors stay near."),
    STEPS[1]: ("2 · Cluster the vectors into a tree",
               "HCE groups the document vectors bottom-up with **spherical k-means**: about b = {branching} "
               "documents per leaf cluster, then about b leaf clusters per parent, and so on up to a single root. "
               "Here: **{n_leaves:,} leaf clusters**, depth **{depth}**. Each node is labelled with its most "
               "distinctive words.\n\nThe same documents coloured by their level-{level} node (nearby points "
               "should mostly share a colour):"),
    STEPS[2]: ("3 · Every document has a path",
               "Take {what}. The document sits in exactly one node per level: its **path** from the root to its "
               "leaf cluster has {depth} steps, the same length for every document. Generative retrieval decodes "
               "such paths token by token; HCE uses them only to choose negatives."),
    STEPS[3]: ("4 · Siblings are the negatives",
               "At each level the query must pick its own branch among the **siblings**: the other children of "
               "the same parent. They get harder level by level: at the top, different subjects; at the bottom, "
               "documents of the same small cluster. Red = the right answer; bars = cosine similarity to the query "
               "with the starting encoder."),
    STEPS[4]: ("5 · The loss at every level",
               "Each level is a small classification: the softmax of the similarities (divided by a temperature "
               "τ) over the candidates, and the loss is minus the log-probability of the right one. The total adds "
               "the leaf term and the mean of the level terms."),
    STEPS[5]: ("6 · What training changed",
               "The same pair on the trained run's tree, scored by the starting encoder (before) and the trained "
               "one (after). Lower rank = better; rank 1 at every level is the goal."),
    SELF_STEP: ("7 · Learning without labels: the self signal",
                "The trained run learned without judged queries, from the **self signal**. A "
                "sentence of a document becomes a **pseudo-query**; the engine's own hybrid search (BM25 plus the "
                "starting encoder, fused as search fuses them), the **teacher**, scores the documents around it in "
                "the tree: its siblings in its leaf cluster and, with tree batching, the neighbouring leaves (the "
                "document itself left out). The encoder being trained, the **student**, "
                "learns to give those siblings the same probabilities as the teacher (a KL divergence between the "
                "two softmaxes), so it absorbs what BM25 knows without a single label.\n\nBelow: one pseudo-query, "
                "the teacher's probability for each sibling beside the student's before and after training."),
}
LOSS_LATEX = (r"\mathcal{L} = \ell_{\text{leaf}} + \frac{1}{D}\sum_{t=1}^{D}\ell_t,\qquad "
              r"\ell_t = -\log \frac{e^{\cos(q, n_t)/\tau}}{\sum_{n \in \text{siblings}(n_t)} e^{\cos(q, n)/\tau}}")
#: How the example pair is described (step 3's ``{what}``) when the corpus has no judged queries.
PSEUDO_PAIR = ("a **pseudo-query**: this corpus has no judged queries, so a sentence of a document plays the query "
               "and the document *without that sentence* is its positive, as the ICT and self signals train (the "
               "document itself as the query would find itself at once)")
NO_TRAINED_RUN = ("No trained run yet. **Train a run on the Train page to see what changes**: the same pair's ranks "
                  "before and after, how the tree moved, and the retrieval scores.")


def walkthrough(ws, corpus: str) -> dict:
    """The runs and the example the walkthrough shows for ``corpus``.

    Returns {start: run dict (the starting encoder), after: the newest trained run (on a corpus without
    judged queries the newest self-signal run if any) or None, is_self: whether ``after`` learned from the
    self signal, steps: STEPS (+ SELF_STEP when is_self), tree: its ``tree_overview``, branching, n_leaves,
    depth, level (the map colour level), pair: (doc_id, query or None) (the first judged query's first
    relevant document, else a pseudo-query: the first document with one, see :func:`pseudo_queries`; else the
    first document standing in for a query), positive_text: the positive's text when it is not the stored
    document (a pseudo-query's document without its sentence) or None, what: how the pair is described}.
    Raises NotFoundError-like HCEError from the views when the corpus has no finished run with a tree.
    """
    from ..errors import NotFoundError
    runs = ws.runs(corpus, status="done", with_tree=True)
    if not runs:
        raise NotFoundError(f"corpus {corpus!r} has no finished run with a tree: encode it first")
    base = [r for r in runs if not r.is_train]
    trained = [r for r in runs if r.is_train]
    trained = [r for r in trained if r.verdict != "worse"] or trained  # a worse run only when it is all there is
    judged = judged_queries(ws, corpus, limit=1)
    selfish = [r for r in trained if r.config_dict.get("signal") == "self"]
    after = ((selfish if selfish and not judged else trained) or [None])[-1]
    is_self = after is not None and after.config_dict.get("signal") == "self"
    start = (next((r for r in base if r.run_id == default_compare_run(ws, after.run_id)), None)
             if after else None) or (base[-1] if base else runs[-1])
    tree = tree_overview(ws, start.run_id)
    level = default_level(tree["nodes"].groupby("level").size().to_dict())
    positive_text = None
    pseudo = [] if judged else pseudo_queries(ws, corpus, limit=1)
    if judged:
        pair, what = (judged[0]["doc_ids"][0], judged[0]["text"]), "a judged query and its relevant document"
    elif pseudo:
        pair, what, positive_text = (pseudo[0]["doc_id"], pseudo[0]["query"]), PSEUDO_PAIR, pseudo[0]["doc_text"]
    else:
        pair, what = (int(ws.tree(start.run_id).tree.doc_ids[0]), None), "a document standing in for a query"
    return {"start": start, "after": after, "is_self": is_self, "steps": STEPS + ([SELF_STEP] if is_self else []),
            "tree": tree, "branching": tree["branching"],
            "n_leaves": tree["n_leaves"], "depth": tree["depth"], "level": level, "pair": pair,
            "positive_text": positive_text, "what": what}

