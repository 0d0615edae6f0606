"""Run a benchmark grid's cells here (``local``), as Slurm jobs through submitit, or as Ray tasks.

    python benchmarks/compare.py --preset cpu --out DIR --launcher submitit   # Slurm; a local executor without it
    python benchmarks/compare.py --preset cpu --out DIR --launcher ray        # RAY_ADDRESS, or a local Ray

One cell is one job. The launcher computes the real data's statistics and the coverage classifier once,
into the cache directory, before the fan-out; every job reads them from there and trains, samples and
scores its cell with the same code as ``local``, into the shared ``--out``, so ``--collect`` (and the table)
does not depend on where the cells ran. A preempted job (Slurm's SIGUSR2 / SIGTERM) checkpoints its
training as ``gan-train`` does; under submitit it is then requeued, and the requeued job resumes the cell.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch

from began_plugin import metrics
from began_plugin.harness import (
    HarnessError,
    HarnessStopped,
    Protocol,
    coverage_inputs,
    real_statistics,
    run_cell,
    training_statistics,
)

LAUNCHERS = ("local", "submitit", "ray")


@dataclass
class CellJob:
    """One cell as a picklable job: the network and the cached real statistics are loaded where it runs."""

    protocol: Protocol
    model: str
    seed: int
    out: str
    cache_dir: str
    device: str
    inception_weights: str | None
    threads: int  # the launcher's torch threads: a cell's numbers then match a local run's

    def __call__(self) -> str:
        from began_plugin.training.loop import resolve_device

        torch.set_num_threads(self.threads)
        device = resolve_device(self.device)
        network = metrics.load_feature_network(
            self.protocol.network, weights_path=self.inception_weights, device=device
        )
        real = real_statistics(self.protocol, network, Path(self.cache_dir), device)
        coverage = coverage_inputs(self.protocol, Path(self.cache_dir), device)
        training = training_statistics(self.protocol, network, Path(self.cache_dir), device, real)
        try:
            run_cell(self.protocol, self.model, self.seed, Path(self.out), network, device, real, coverage, training)
        except HarnessStopped as stopped:
            # The training checkpointed; the signal goes on to the engine's own handler (submitit: requeue).
            signal.raise_signal(stopped.signal_number)
            raise
        return f"{self.model}:{self.seed}"

    def checkpoint(self, *args, **kwargs):
        """submitit's preemption hook: requeue the same job, which resumes the cell from its checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(CellJob(**self.__dict__))


def run_jobs(launcher: str, jobs: list[CellJob], out: Path) -> None:
    """Run every job with ``launcher``; one sentence (HarnessError) for a job that failed."""
    if launcher == "submitit":
        _submitit(jobs, out)
    elif launcher == "ray":
        _ray(jobs)
    else:
        raise HarnessError(f"unknown --launcher {launcher!r}; expected one of {list(LAUNCHERS)}.")


def _missing(extra: str, exc: ImportError) -> HarnessError:
    return HarnessError(
        f"--launcher {extra} needs the {extra} package ({exc}); install it with pip install 'began-plugin[{extra}]'."
    )


def _submitit(jobs: list[CellJob], out: Path) -> None:
    try:
        import submitit
    except ImportError as exc:
        raise _missing("submitit", exc) from None
    # Slurm where sbatch exists, else submitit's local executor (one subprocess per job).
    executor = submitit.AutoExecutor(folder=out / "submitit")
    executor.update_parameters(timeout_min=int(os.environ.get("BEGAN_PLUGIN_SUBMITIT_TIMEOUT_MIN", "1440")))
    if executor.cluster == "slurm":
        executor.update_parameters(slurm_additional_parameters={"signal": "USR2@120"})
    submitted = [executor.submit(job) for job in jobs]
    for job, sub in zip(jobs, submitted):
        try:
            sub.result()
        except Exception as exc:  # submitit re-raises the job's error with its log; name the cell and the log
            first = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
            raise HarnessError(
                f"cell {job.model}:{job.seed} failed under submitit ({first}); its log is in {out / 'submitit'}, "
                f"and rerunning the same command resumes the cell."
            ) from None


def _ray(jobs: list[CellJob]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise _missing("ray", exc) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(lambda job: job())
        refs = [remote.remote(job) for job in jobs]
        for job, ref in zip(jobs, refs):
            try:
                ray.get(ref)
            except Exception as exc:
                raise HarnessError(
                    f"cell {job.model}:{job.seed} failed under ray ({type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''}); rerunning the same "
                    f"command resumes the cell."
                ) from None
    finally:
        if started:
            ray.shutdown()
