"""A run's outputs as one transaction: written as temporaries, renamed or removed together.

Every file is written under a hidden temporary name beside its output path; then all of them are
renamed into place, or all of them removed. A failed or interrupted run therefore leaves nothing
at the output paths (existing outputs stay as they were), and a run report, committed after
everything else, never describes outputs that are not there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from geoseg.errors import ConfigError, OutputError
from geoseg.io.atomic import check_output_path, remove_with_sidecars, temporary_sibling


def check_outputs(paths: Iterable[Path | None], overwrite: bool) -> None:
    """Fail before any work if the outputs of a run cannot all be written.

    ``None`` entries (outputs not asked for) are skipped.

    Raises
    ------
    ConfigError
        If two outputs share a file name.
    OutputError
        If one cannot be written (see :func:`geoseg.io.atomic.check_output_path`).
    """
    given = [p for p in paths if p is not None]
    named = [p.resolve() for p in given]
    if len(set(named)) < len(named):
        raise ConfigError("two outputs have the same file name: give each its own")
    for path in given:
        check_output_path(path, overwrite)


def check_not_inputs(outputs: Iterable[Path | None], inputs: Iterable[str | Path]) -> None:
    """Fail before any work if an output would replace one of the run's inputs.

    ``--overwrite`` replaces old outputs, never the scene or the model a run reads: a class
    raster written over its own scene would destroy the data it came from. Inputs that are not
    local files (``/vsizip/...``, URLs) cannot be written over and are skipped.

    Raises
    ------
    ConfigError
        If an output is the same file as an input (by path, link or hard link).
    """
    local = [Path(p) for p in map(str, inputs) if "://" not in p and not p.startswith("/vsi")]
    for output in (p for p in outputs if p is not None):
        for source in local:
            same = output.resolve() == source.resolve()
            if not same and output.exists() and source.exists():
                same = os.path.samefile(output, source)
            if same:
                raise ConfigError(
                    f"output {output} is {source}, an input of this run: give the output "
                    "another name"
                )


class OutputSet:
    """Temporaries of a run's outputs, renamed into place together or removed together.

    As a context manager it commits when the block ends normally and rolls back when it raises
    (an error, Ctrl-C); a failing commit rolls back what it had not renamed yet.
    """

    def __init__(self) -> None:
        self._outputs: list[tuple[Path, Path]] = []  # (temporary, final), in commit order
        self._last: list[tuple[Path, Path]] = []  # committed after all the others
        self._scratch: list[Path] = []  # never renamed: removed at commit and at rollback

    def reserve(self, final: Path, tag: str = "tmp", *, last: bool = False) -> Path:
        """A temporary to write ``final``'s content to; renamed to ``final`` at :meth:`commit`.

        Parameters
        ----------
        final : Path
            The output's path (checked beforehand, e.g. with :func:`check_outputs`).
        tag : str
            Part of the temporary's hidden name, to tell temporaries apart.
        last : bool
            Rename it after every output reserved without ``last`` (a report describing them).
        """
        temporary = temporary_sibling(final, tag)
        self.adopt(temporary, final, last=last)
        return temporary

    def adopt(self, temporary: Path, final: Path, *, last: bool = False) -> None:
        """Take a temporary someone else made for ``final`` into the set (see :meth:`reserve`)."""
        (self._last if last else self._outputs).append((temporary, final))

    def scratch(self, beside: Path, tag: str = "tmp") -> Path:
        """A temporary beside ``beside`` that is no output: removed at commit and at rollback."""
        temporary = temporary_sibling(beside, tag)
        self._scratch.append(temporary)
        return temporary

    @property
    def finals(self) -> tuple[Path, ...]:
        """The output paths, in the order :meth:`commit` renames them."""
        return tuple(final for _, final in (*self._outputs, *self._last))

    def commit(self) -> None:
        """Rename every temporary to its output path, the ``last`` ones last; remove scratch.

        Raises
        ------
        OutputError
            If a reserved temporary was never written (nothing is renamed then), or a rename
            fails; what is not renamed yet stays to :meth:`rollback`.
        """
        pending = [*self._outputs, *self._last]
        for temporary, final in pending:
            if not temporary.exists():
                raise OutputError(f"nothing was written for {final}")
        while pending:
            temporary, final = pending[0]
            try:
                os.replace(temporary, final)
            except OSError as exc:
                raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from exc
            pending.pop(0)
            self._forget(temporary)
            remove_with_sidecars(temporary)  # sidecars GDAL left beside the temporary
        self.rollback()  # the scratch files

    def rollback(self) -> None:
        """Remove every temporary not yet renamed and its GDAL sidecars; outputs are untouched."""
        for temporary in (*(t for t, _ in (*self._outputs, *self._last)), *self._scratch):
            remove_with_sidecars(temporary)
        self._outputs.clear()
        self._last.clear()
        self._scratch.clear()

    def _forget(self, temporary: Path) -> None:
        self._outputs = [pair for pair in self._outputs if pair[0] != temporary]
        self._last = [pair for pair in self._last if pair[0] != temporary]

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.rollback()
            return
        try:
            self.commit()
        except BaseException:
            self.rollback()
            raise
