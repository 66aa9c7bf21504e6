"""A dataset's files, declared once by its reader.

Every reader class carries a ``layout`` (:class:`DatasetLayout`): the folders the dataset may sit in under a data
root, each file and folder it reads (with a few words for reports, accepted alternative places and the splits
that read it), its split table, and the variants ``hap3d data check`` loads as rows of their own. The registry
(:data:`hap3d.data.DATASETS`), ``hap3d data check`` and the synthetic-data writers all read it from there, so a
new dataset is one reader module with a ``layout`` plus one registry line.

The module only describes paths: it imports nothing heavier than :mod:`pathlib`, so that declaring a layout
costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass(frozen=True)
class DataFile:
    """A file or folder a reader reads, relative to the dataset folder."""

    key: str  # how the reader, ``data check`` and the writers name it ("annotations", "fits", "images", ...)
    rel: str  # where it belongs; ``hap3d data synth`` writes it there
    what: str  # a few words for reports ("COCO keypoint annotations")
    is_dir: bool = False
    alternatives: tuple[str, ...] = ()  # other accepted places, tried after ``rel``
    splits: tuple[str, ...] = ()  # the splits that read it; () = every split

    def candidates(self, folder: str | Path) -> list[Path]:
        """Every place the file is accepted in, in the order they are tried."""
        return [Path(folder) / r for r in (self.rel, *self.alternatives)]

    def find(self, folder: str | Path) -> Path | None:
        """The first candidate that exists (a folder for a folder, a file for a file), else None."""
        return next((c for c in self.candidates(folder) if (c.is_dir() if self.is_dir else c.is_file())), None)


@dataclass(frozen=True)
class Variant:
    """Another way of reading the dataset that ``hap3d data check`` loads as a row of its own (3DPW-Crowd).

    The reader takes ``<option>=True`` to read it; the config flag ``data.<option>`` makes its files required."""

    row: str  # its row in the check's report ("PW3D-Crowd")
    title: str  # its name in messages ("3DPW-Crowd")
    split: str  # the layout split whose files it reads
    option: str  # the reader's keyword argument that selects it
    # A config asking for it evaluates it instead of the default split (3DPW-Crowd); False: besides it (a validation
    # split, data.valset), so the default split stays required
    replaces_default: bool = True


@dataclass(frozen=True)
class DatasetLayout(Generic[S]):
    """Where a dataset sits under a data root and which files its reader reads.

    ``splits`` maps a split name to the dataset's own description of it (for Human3.6M: subjects, frame step and
    cameras); a :class:`DataFile` tagged with split names is read only by those splits. Without splits, every
    file is read.
    """

    folders: tuple[str, ...]  # accepted dataset folders under the data root, in the order they are tried
    files: tuple[DataFile, ...]
    images: str = "images"  # the folder the annotation files' image names are relative to
    written: str = ""  # the folder ``hap3d data synth`` writes (one of ``folders``); "" = the first
    splits: Mapping[str, S] = field(default_factory=dict)
    default_split: str = ""  # the split training / evaluation read by default and ``data check`` requires
    variants: tuple[Variant, ...] = ()

    def __post_init__(self) -> None:
        """Reject a declaration that contradicts itself, when the reader module is imported."""
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))
        if not self.written:
            object.__setattr__(self, "written", self.folders[0] if self.folders else "")
        problems = []
        if not self.folders:
            problems.append("no dataset folder")
        if self.written not in self.folders:
            problems.append(f"written folder {self.written!r} is not among {self.folders}")
        keys = [f.key for f in self.files]
        if len(set(keys)) != len(keys):
            problems.append(f"repeated file keys in {keys}")
        if (self.splits or self.default_split) and self.default_split not in self.splits:
            problems.append(f"default split {self.default_split!r} is not among {tuple(self.splits)}")
        tags = {s for f in self.files for s in f.splits} | {v.split for v in self.variants}
        unknown = sorted(tags - set(self.splits))
        if unknown:
            problems.append(f"splits {unknown} are not in the split table {tuple(self.splits)}")
        if not self.files_for():
            problems.append("no file for the default split")
        if problems:
            raise ValueError("invalid dataset layout: " + "; ".join(problems))

    @property
    def marker(self) -> str:
        """The first file of the default split: where several candidate folders exist, the one holding it wins."""
        return self.files_for()[0].rel

    def file(self, key: str) -> DataFile:
        for f in self.files:
            if f.key == key:
                return f
        raise KeyError(f"no file {key!r} in this layout; declared: {', '.join(f.key for f in self.files)}")

    def path(self, folder: str | Path, key: str) -> Path:
        """Where the declared file ``key`` belongs under the dataset folder (where a writer puts it)."""
        return Path(folder) / self.file(key).rel

    def find(self, folder: str | Path, key: str) -> Path:
        """The first accepted place of ``key`` that exists, else where it belongs (so a reader names that)."""
        return self.file(key).find(folder) or self.path(folder, key)

    def files_for(self, split: str | None = None) -> tuple[DataFile, ...]:
        """The files a split reads (None: the default split), in declaration order."""
        split = self.default_split if split is None else split
        return tuple(f for f in self.files if not f.splits or split in f.splits)

    def own_files(self, split: str) -> tuple[DataFile, ...]:
        """The files only some splits read, ``split`` among them (for a variant: what tells whether it is there)."""
        return tuple(f for f in self.files if split in f.splits)
