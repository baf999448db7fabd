"""Timing helpers of the benchmarks: the standard library only, so that the torchvision worker
(run by another Python, without MXNet) uses them too."""
import resource
import time

__all__ = ["peak_rss_gb", "median", "median_seconds"]


def peak_rss_gb():
    """This process's peak resident set (VmHWM), in GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 ** 2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def median(values):
    """The middle value (the upper one of the middle two for an even count)."""
    return sorted(values)[len(values) // 2]


def median_seconds(fn, warmup, runs):
    """Median wall time of ``runs`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)
