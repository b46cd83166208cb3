"""Zero-shot utility: class embeddings and top-k on hand-built embeddings."""
import torch

from pipeline.evaluation.zeroshot import class_embeddings, topk_accuracy


def test_class_embedding_is_mean_of_normalised_templates():
    table = {"a x": [3.0, 0.0], "b x": [0.0, 1.0], "a y": [0.0, 2.0], "b y": [0.0, 5.0]}
    emb = class_embeddings(lambda texts: torch.tensor([table[t] for t in texts]),
                           ["x", "y"], ["a {}", "b {}"])
    s = 2 ** -0.5
    assert torch.allclose(emb, torch.tensor([[s, s], [0.0, 1.0]]), atol=1e-6)


def test_topk_accuracy_counts_hits():
    classes = torch.eye(3)
    images = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.9], [0.9, 0.0, 1.0], [1.0, 0.9, 0.8]])
    labels = torch.tensor([0, 2, 2, 2])
    acc = topk_accuracy(images, labels, classes, ks=(1, 2, 5))
    assert acc == {"top1": 0.25 * 2, "top2": 0.75, "top5": 1.0}
