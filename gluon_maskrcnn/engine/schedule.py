"""Learning-rate schedules: linear warm-up, then step or cosine decay."""
import math

__all__ = ["learning_rate", "default_lr", "default_warmup"]


def default_lr(total_batch_size):
    """GluonCV's default: 0.01 for 8 images, scaled linearly with the batch size."""
    return 0.01 * total_batch_size / 8


def default_warmup(total_batch_size):
    """GluonCV's default warm-up length: 8,000 images' worth of iterations, at least 1,000."""
    return max(8000 / total_batch_size, 1000)


def learning_rate(iteration, base_lr, total_iters, warmup_iters=0, warmup_factor=1.0 / 3,
                  mode="step", decay_iters=(), decay_factor=0.1):
    """Learning rate at ``iteration`` (0-based)."""
    if iteration < warmup_iters:
        alpha = iteration / max(warmup_iters, 1)
        return base_lr * (warmup_factor * (1 - alpha) + alpha)
    if mode == "cosine":
        progress = (iteration - warmup_iters) / max(total_iters - warmup_iters, 1)
        return base_lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return base_lr * decay_factor ** sum(iteration >= d for d in decay_iters)
