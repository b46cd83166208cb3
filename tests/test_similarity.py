"""Similarity metrics on hand-built embeddings."""
import math

import torch

from pipeline.evaluation.similarity import image_similarities, mean_cosine, text_similarities


def test_mean_cosine_rows_and_broadcast():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [2.0, 0.0]])
    assert math.isclose(mean_cosine(a, b), 0.5)
    assert math.isclose(mean_cosine(a, torch.tensor([1.0, 1.0])), 2 ** -0.5, rel_tol=1e-6)


def test_text_similarities_pick_the_right_pairs():
    e = torch.eye(3)
    same, other = e[[0, 0]], e[[1, 1]]
    m = text_similarities(teacher_clean=same, student_clean=same, student_trigger=same,
                          student_target=same, teacher_trigger=other, teacher_target=e[[2, 2]])
    assert m == {"sim_clean": 1.0, "sim_backdoor": 1.0, "sim_backdoor_before": 0.0,
                 "sim_target": 0.0}


def test_image_similarities_use_mean_raw_embedding():
    faces = torch.tensor([[2.0, 0.0], [0.0, 2.0]])         # e_avg = (1, 1)
    removed_before = torch.tensor([[1.0, 0.0]])
    removed_after = torch.tensor([[5.0, 5.0]])
    m = image_similarities(faces, faces, faces, faces * 3, removed_before, removed_after)
    assert math.isclose(m["sim_id"], 1.0, rel_tol=1e-6)
    assert math.isclose(m["sim_id_before"], 2 ** -0.5, rel_tol=1e-6)
    assert math.isclose(m["sim_target"], 1.0, rel_tol=1e-6)
    assert math.isclose(m["sim_clean"], 1.0, rel_tol=1e-6)
