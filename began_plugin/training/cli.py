"""``gan-train`` / ``python -m began_plugin``: train any registered model from ``key=value`` arguments."""

from __future__ import annotations

import signal
import sys

from began_plugin.data import DataError
from began_plugin.registry import RegistryError, model_status
from began_plugin.training.checkpoint import CheckpointError
from began_plugin.training.config import ConfigError, help_text, parse_args, preset_note


def list_models_text() -> str:
    lines = []
    for entry, status in model_status():
        ok = "loads" if status == "ok" else f"DOES NOT LOAD: {status}"
        lines.append(f"{entry.name:<10} {entry.distribution} {entry.version:<8} {ok}")
        if status == "ok":
            from began_plugin.registry import load_model
            from began_plugin.training.config import model_hparams

            hp = model_hparams(load_model(entry.name), [])
            lines.append("           " + " ".join(f"model.{k}={v}" for k, v in hp.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(help_text())
        return 0
    if "--list-models" in args:
        print(list_models_text())
        return 0
    unknown_flags = [a for a in args if a.startswith("-")]
    if unknown_flags:
        print(
            f"gan-train: error: unknown option {unknown_flags[0]!r}; options are --help and --list-models, "
            f"everything else is key=value.",
            file=sys.stderr,
        )
        return 2
    from began_plugin.training.loop import StoppedAtOnce, TrainingDiverged, stopped_at_once, train

    cfg = None
    try:
        cfg = parse_args(args)
        note = preset_note(cfg)
        if note:
            print(f"gan-train: {note}.", flush=True)
        try:
            result = train(cfg, argv=["gan-train", *args])
        except BaseException:
            # A second stop signal may land inside C++ (torch.save's writer), which re-raises it as
            # another exception: once one came, whatever ends the run is that stop.
            signum = stopped_at_once()
            if signum is not None:
                raise StoppedAtOnce(signum) from None
            raise
    except (ConfigError, RegistryError, DataError, CheckpointError, TrainingDiverged) as exc:
        print(f"gan-train: error: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, TrainingDiverged) else 3
    except OSError as exc:  # a full disk, a vanished directory, an I/O error while the run writes
        where = f" ({exc.filename})" if exc.filename else ""
        ckpt = f"{cfg.out}/checkpoints/latest.pt" if cfg is not None else "the run's checkpoint"
        print(
            f"gan-train: error: the run stopped because the system refused an operation "
            f"({exc.strerror or exc}{where}); the last checkpoint {ckpt}, if one was written, is intact: "
            f"fix the cause (e.g. free disk space) and rerun with resume=true.",
            file=sys.stderr,
        )
        return 4
    except KeyboardInterrupt as exc:  # a second stop signal, or Ctrl-C before the first step
        signum = exc.signal if isinstance(exc, StoppedAtOnce) else signal.SIGINT
        ckpt = f"{cfg.out}/checkpoints/latest.pt" if cfg is not None else "the run's checkpoint"
        print(
            f"gan-train: stopped at once by signal {signum} without a new checkpoint; the last checkpoint {ckpt}, "
            f"if one was written, is intact: rerun with resume=true to continue from it.",
            file=sys.stderr,
        )
        return 128 + signum
    print(f"run directory: {result.run_dir} (step {result.step})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
