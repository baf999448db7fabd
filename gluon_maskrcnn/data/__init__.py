"""Datasets, transforms, RPN targets, batching and the synthetic COCO generator."""
