"""Listwise distillation of a teacher's ranking into the student: KL(teacher || student) over candidates."""
from __future__ import annotations

import torch
import torch.nn.functional as F


class TeacherDistillationLoss(torch.nn.Module):
    """KL divergence between the teacher's and the student's softmax over each query's candidate documents.

    For query ``i`` with valid candidates ``C_i`` (the mask), ``p = softmax(teacher_logits[i, C_i])`` and
    ``log q = log_softmax(student_scores[i, C_i])``; the loss is ``sum_j p_j (log p_j - log q_j)`` averaged
    over the queries with at least two candidates (one candidate carries no ranking).

    In the self signal the candidates of a pseudo-query are its source document's tree siblings (or the
    teacher's top documents) and the batch's other source documents; the source itself is not one of them,
    so the student is never asked to find the text the query was cut from (which is what makes ICT drift),
    only to order the other documents as the hybrid teacher orders them.

    Args:
        none: temperatures live in the logits (the student's ``cos / tau``, the teacher's
            :meth:`~hce_engine.training.teacher.HybridTeacher.logits`).

    Inputs:
        +-----------------+--------------------------------------------+-------------+
        | argument        | meaning                                    | shape       |
        +=================+============================================+=============+
        | student_scores  | student logits (cos / tau), with grad      | float (B,K) |
        +-----------------+--------------------------------------------+-------------+
        | teacher_logits  | teacher logits (no grad; ignored off mask) | float (B,K) |
        +-----------------+--------------------------------------------+-------------+
        | mask            | True = a valid candidate                   | bool (B,K)  |
        +-----------------+--------------------------------------------+-------------+

        Returns ``(loss, details)``: a scalar tensor and ``{"kl", "agree_top1", "queries"}`` (the share of
        queries whose student top-1 is the teacher's top-1, and how many queries counted).

    References:
        K. Wang, N. Thakur, N. Reimers, I. Gurevych. "GPL: Generative Pseudo Labeling for Unsupervised Domain
        Adaptation of Dense Retrieval", NAACL 2022 (pseudo-labels from a stronger ranker);
        sentence-transformers' ``DistillKLDivLoss`` (the listwise KL form used here).

    Example:
        ::

            loss_fn = TeacherDistillationLoss()
            student = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
            teacher = torch.tensor([[0.0, 1.0, 2.0]])
            loss, _ = loss_fn(student, teacher, torch.ones(1, 3, dtype=torch.bool))
            loss.backward()   # pushes the student's order towards the teacher's
    """

    def forward(self, student_scores: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, dict]:
        mask = mask.bool()
        counted = mask.sum(1) >= 2
        student_scores = student_scores.float()
        if not bool(counted.any()):
            return student_scores.sum() * 0.0, {"kl": None, "agree_top1": None, "queries": 0}
        s = student_scores[counted]
        t = torch.nan_to_num(teacher_logits.float().to(s.device)[counted], nan=0.0)
        m = mask[counted]
        neg_inf = torch.finfo(s.dtype).min
        log_q = F.log_softmax(s.masked_fill(~m, neg_inf), dim=1)
        log_p = F.log_softmax(t.masked_fill(~m, neg_inf), dim=1)
        p = log_p.exp()
        kl = (p * (log_p - log_q)).masked_fill(~m, 0.0).sum(1).mean()
        with torch.no_grad():
            agree = (s.masked_fill(~m, neg_inf).argmax(1) == t.masked_fill(~m, neg_inf).argmax(1)).float().mean()
        return kl, {"kl": float(kl.detach()), "agree_top1": float(agree), "queries": int(counted.sum())}
