"""Datasets that survive bad videos and reject bad annotation lists early.

* :class:`CheckedVideoDataset` (mmaction2 ``DATASETS``) is mmaction2's
  ``VideoDataset`` with a strict list parser (every malformed line is
  reported as ``file:line`` with the fix, when the dataset is built) and
  bad-sample replacement (below).
* :class:`SkipBadSamples` (root ``DATASETS``, so usable from mmpretrain and
  mmaction2 configs) wraps any dataset with the same replacement.

A sample whose loading raises (missing, empty, truncated or non-video file,
decoder error) or whose video has fewer than ``min_frames`` frames is
replaced by another index, drawn from a random stream seeded by
``(replace_seed, index, attempt)``, so the replacement does not depend on the
worker, the epoch or the order of loading. The returned sample's data sample
carries ``metainfo['bad_samples'] = [(path, reason), ...]``; dataloader
workers are separate processes, so counting, logging and the
``max_bad_fraction`` limit happen in the main process, in
:class:`~sparseformer_mm.engine.hooks.DataCheckHook`, from the batches.
"""
import errno
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmaction.datasets import VideoDataset
from mmaction.registry import DATASETS as ACTION_DATASETS
from mmengine.registry import DATASETS as ROOT_DATASETS

BAD_SAMPLES_KEY = 'bad_samples'


class BadSampleError(RuntimeError):
    """Raised when a sample and all its replacements fail to load."""


class ShortVideoError(ValueError):
    """A video with fewer decodable frames than ``min_frames``."""


class AnnotationError(ValueError):
    """A malformed annotation list (raised while building the dataset)."""


def _first_line(err: BaseException) -> str:
    """``Type: first non-empty line of the message``: decoder errors can
    span many lines, and a report keeps one line per sample."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f'{type(err).__name__}: {lines[0] if lines else ""}'.rstrip(': ')


# where a data info (or a packed sample's metainfo) names its file
PATH_KEYS = ('filename', 'img_path', 'frame_dir', 'audio_path')


def _sample_path(info: dict) -> str:
    for key in PATH_KEYS:
        if info.get(key):
            return str(info[key])
    return '<no path>'


def path_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a readable regular file (``None`` if it is):
    ``'file not found'``, ``'is a directory'``, ``'is a symlink loop'``,
    ``'is a broken symlink (to X)'`` or ``'is not a regular file'``."""
    if osp.isfile(path):
        return None
    if osp.isdir(path):
        return 'is a directory'
    if osp.islink(path):
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return 'is a symlink loop'
        return f'is a broken symlink (to {os.readlink(path)})'
    if osp.exists(path):
        return 'is not a regular file'
    return 'file not found'


def read_list_lines(path: str) -> List[Tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 list file.

    A UTF-8 byte-order mark (Windows editors write one) is dropped, so the
    first path does not start with an invisible ``\\ufeff``. A file in
    another encoding raises :class:`AnnotationError` naming the file, the
    first undecodable line and how to convert it.
    """
    with open(path, 'rb') as f:
        data = f.read()
    if data.startswith((b'\xff\xfe', b'\xfe\xff')):
        raise AnnotationError(
            f'{path} is UTF-16 encoded (it starts with a UTF-16 byte-order '
            'mark); save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 '
            f'{path} > fixed.txt')
    if data.startswith(b'\xef\xbb\xbf'):
        data = data[3:]
    lines = data.split(b'\n')
    out = []
    for lineno, raw in enumerate(lines, 1):
        try:
            out.append((lineno, raw.decode('utf-8')))
        except UnicodeDecodeError as e:
            raise AnnotationError(
                f'{path}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at '
                f'column {e.start + 1}: {raw[:60]!r}); save the list as '
                'UTF-8, e.g. iconv -f LATIN1 -t UTF-8 (or the encoding it '
                f'was written in) {path} > fixed.txt') from None
    if out and out[-1][1] == '':
        out.pop()  # the newline at the end
    return out


def describe_failure(exc: BaseException, path: Optional[str]) -> str:
    """A one-line reason for a sample that failed to load."""
    if isinstance(exc, ShortVideoError):
        return str(exc)
    if path and path != '<no path>':
        problem = path_problem(path)
        if problem is not None:
            return problem
        if osp.isfile(path) and osp.getsize(path) == 0:
            return 'empty file (0 bytes)'
        if osp.isfile(path):
            # decord's errors are terse ("Error reading x.mp4..."); the size
            # helps to tell a truncated file from a wrong format. The report
            # names the path already: not twice on one line.
            reason = _first_line(exc).replace(f': {path}', '')
            return f'{reason.replace(path, "the file")} ' \
                f'({osp.getsize(path)} bytes)'
    return _first_line(exc)


def replacement_index(idx: int, attempt: int, length: int,
                      seed: int = 0) -> int:
    """The index tried after ``attempt`` failures starting from ``idx``.

    A function of its arguments only (not of the worker or the epoch), and
    never ``idx`` itself when the dataset has more than one sample.
    """
    if length <= 1:
        return 0
    rng = np.random.default_rng([seed, idx, attempt])
    j = int(rng.integers(length - 1))
    return j + 1 if j >= idx else j


def attach_bad_samples(data, bad: Sequence[Tuple[str, str]]):
    """Record the replaced ``(path, reason)`` pairs in the data sample."""
    sample = data.get('data_samples') if isinstance(data, dict) else None
    if sample is not None and hasattr(sample, 'set_metainfo'):
        prev = list(sample.metainfo.get(BAD_SAMPLES_KEY, []))
        sample.set_metainfo({BAD_SAMPLES_KEY: prev + list(bad)})
    return data


def attach_source(data, info: dict):
    """Record in the packed sample which entry of the list it was loaded
    from: ``sample_idx`` and its file (under the key the data info uses,
    e.g. ``filename`` for videos), where the pipeline did not pack them
    (mmaction2's ``PackActionInputs`` packs neither), so that messages and
    dumped results can name the file."""
    sample = data.get('data_samples') if isinstance(data, dict) else None
    if sample is None or not hasattr(sample, 'set_metainfo'):
        return data
    meta = sample.metainfo
    new = {}
    if 'sample_idx' not in meta and info.get('sample_idx') is not None:
        new['sample_idx'] = info['sample_idx']
    if not any(meta.get(k) for k in PATH_KEYS):
        key = next((k for k in PATH_KEYS if info.get(k)), None)
        if key is not None:
            new[key] = str(info[key])
    if new:
        sample.set_metainfo(new)
    return data


def sample_path_of(data_sample) -> Optional[str]:
    """The file a packed data sample was loaded from, if it names one."""
    meta = getattr(data_sample, 'metainfo', None) or {}
    for key in PATH_KEYS:
        if meta.get(key):
            return str(meta[key])
    return None


def bad_samples_of(data_sample) -> List[Tuple[str, str]]:
    """The ``(path, reason)`` pairs a data sample carries (possibly none)."""
    meta = getattr(data_sample, 'metainfo', None)
    if not meta:
        return []
    return [tuple(x) for x in meta.get(BAD_SAMPLES_KEY, [])]


class _Replacer:
    """The retry loop shared by the subclass and the wrapper."""

    def __init__(self, max_retries: int = 10, replace_seed: int = 0):
        if max_retries < 0:
            raise ValueError(f'max_retries must be >= 0, got {max_retries}')
        self.max_retries = max_retries
        self.replace_seed = replace_seed
        self.known_bad = {}  # index -> (path, reason), per process

    def fetch(self, idx: int, length: int, load, path_of):
        bad = []
        cur = idx
        for attempt in range(self.max_retries + 1):
            if cur not in self.known_bad:
                try:
                    data = load(cur)
                except Exception as e:  # noqa: BLE001  any loader error
                    path = path_of(cur)
                    self.known_bad[cur] = (path, describe_failure(e, path))
                else:
                    return attach_bad_samples(data, bad) if bad else data
            bad.append(self.known_bad[cur])
            cur = replacement_index(idx, attempt, length, self.replace_seed)
        listing = '\n'.join(f'  {p}: {r}' for p, r in bad)
        what = (f'sample {idx} failed to load (max_retries=0: no '
                'replacement tried)' if not self.max_retries else
                f'sample {idx} and its {self.max_retries} replacements all '
                'failed to load')
        raise BadSampleError(
            f'{what}:\n{listing}\nIf every sample fails, the pipeline or '
            'data_prefix is wrong rather than the files; otherwise fix or '
            'remove these files (for videos, tools/data/kinetics/'
            'check_videos.py lists every unreadable one).')


@ACTION_DATASETS.register_module()
class CheckedVideoDataset(VideoDataset):
    """mmaction2's ``VideoDataset`` with a strict list parser and bad-video
    replacement.

    The list holds one ``path label`` per line, separated by ``delimiter``
    (one space), as for ``VideoDataset``. Blank lines are skipped. Every
    other malformed line is reported, all at once, as ``ann_file:line``
    with the fix when the dataset is built (before training): a missing
    label, a non-integer label, a label outside ``[0, num_classes)`` (when
    ``num_classes`` is known; :class:`DataCheckHook` also checks the labels
    against the model head's ``num_classes`` before the run), extra fields
    (a path containing spaces, which ``VideoDataset`` splits) and tabs or
    repeated spaces.

    A video that fails to load, or has fewer than ``min_frames`` frames, is
    replaced (see the module documentation). mmaction2's ``SampleFrames``
    loops over the frames of a video shorter than ``clip_len *
    frame_interval``; that is kept: with ``min_frames=clip_len`` only videos
    with fewer frames than the clip *samples* count as bad.

    Args:
        ann_file (str): The list file.
        pipeline (list): Data transforms.
        num_classes (int, optional): Labels must be below it.
            Defaults to None (checked by :class:`DataCheckHook` instead).
        skip_bad_videos (bool): Replace bad videos instead of raising.
            Defaults to True.
        min_frames (int): Videos with fewer frames are bad. Defaults to 1.
        max_retries (int): Replacements tried for one sample before
            :class:`BadSampleError`. Defaults to 10.
        replace_seed (int): Seed of the replacement indices. Defaults to 0.
        allow_unlabeled (bool): Accept ``path``-only lines (label -1), as
            ``VideoDataset`` does for inference lists. Defaults to False.
        **kwargs: Other ``VideoDataset`` arguments (``data_prefix``,
            ``test_mode``, ``delimiter``, ``multi_class``, ...).
    """

    def __init__(self,
                 ann_file: str,
                 pipeline: list,
                 num_classes: Optional[int] = None,
                 skip_bad_videos: bool = True,
                 min_frames: int = 1,
                 max_retries: int = 10,
                 replace_seed: int = 0,
                 allow_unlabeled: bool = False,
                 **kwargs):
        if min_frames < 1:
            raise ValueError(f'min_frames must be >= 1, got {min_frames}')
        self.skip_bad_videos = skip_bad_videos
        self.min_frames = min_frames
        self.allow_unlabeled = allow_unlabeled
        self._replacer = _Replacer(max_retries, replace_seed)
        super().__init__(ann_file, pipeline, num_classes=num_classes,
                         **kwargs)

    # -- annotations --------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'annotation file {self.ann_file!r} does not exist; build it '
                'with tools/data/kinetics/build_file_list.py or set '
                'ann_file in the dataset config.')
        prefix = self.data_prefix.get('video')
        data_list, problems = [], []
        for lineno, raw in read_list_lines(self.ann_file):
            line = raw.strip()
            if not line:
                continue
            item, problem = self._parse_line(line)
            if problem:
                problems.append(f'{self.ann_file}:{lineno}: {problem}')
                continue
            if prefix is not None:
                item['filename'] = osp.join(prefix, item['filename'])
            item['ann_line'] = lineno
            data_list.append(item)
        if problems:
            self._raise(problems)
        if not data_list:
            raise AnnotationError(f'{self.ann_file} lists no videos (it is '
                                  'empty or has only blank lines).')
        if self.num_classes is not None:
            self.check_labels(self.num_classes, data_list)
        return data_list

    def _parse_line(self, line: str):
        d = self.delimiter
        fields = line.split(d)
        show = repr(line if len(line) < 120 else line[:117] + '...')
        if d == ' ' and ('' in fields or any(c.isspace() and c != ' '
                                             for c in line)):
            return None, (f'{show}: fields must be separated by exactly one '
                          'space (found a tab or repeated spaces)')
        if self.multi_class:
            labels = fields[1:]
        elif len(fields) == 1:
            if self.allow_unlabeled:
                return dict(filename=fields[0], label=-1), None
            return None, (f'{show} has no label; write "path label", e.g. '
                          f'"{fields[0]} 0" (the class index, see '
                          'classes.txt)')
        elif len(fields) > 2:
            return None, (
                f'{show} has {len(fields)} fields, expected "path label". '
                'If the path contains spaces, rename the files (e.g. spaces '
                'to "_"): mmaction2 splits list lines on the delimiter')
        else:
            labels = fields[1:]
        try:
            ints = [int(x) for x in labels]
        except ValueError:
            return None, (f'{show}: label {labels} is not an integer class '
                          'index; map class names to indices (e.g. with '
                          'tools/data/kinetics/build_file_list.py)')
        if any(v < 0 for v in ints):
            return None, f'{show}: negative label {ints}'
        label = ints if self.multi_class else ints[0]
        return dict(filename=fields[0], label=label), None

    def _raise(self, problems: List[str]) -> None:
        shown = '\n'.join(problems[:10])
        more = f'\n... and {len(problems) - 10} more' if len(problems) > 10 \
            else ''
        raise AnnotationError(
            f'{len(problems)} malformed line(s) in {self.ann_file}:\n'
            f'{shown}{more}')

    def check_labels(self, num_classes: int,
                     data_list: Optional[List[dict]] = None) -> None:
        """Raise :class:`AnnotationError` naming every ``file:line`` whose
        label is not in ``[0, num_classes)``."""
        if data_list is None:
            data_list = [self.get_data_info(i) for i in range(len(self))]
        problems = []
        for item in data_list:
            labels = item['label']
            labels = labels if isinstance(labels, (list, tuple)) else [labels]
            labels = [int(x) for x in labels]
            if any(x >= num_classes for x in labels):
                problems.append(
                    f'{self.ann_file}:{item.get("ann_line", "?")}: label '
                    f'{max(labels)} is out of range for num_classes='
                    f'{num_classes} (valid: 0..{num_classes - 1}); fix the '
                    'list or set num_classes in the head (cls_head / head) '
                    'to the number of classes')
        if problems:
            self._raise(problems)

    # -- bad videos ---------------------------------------------------------
    def prepare_data(self, idx: int):
        results = self.get_data_info(idx)
        info = dict(results)  # the transforms change it in place
        checked = False
        for t in self.pipeline.transforms:
            results = t(results)
            if results is None:
                return None
            if not checked and isinstance(results, dict) \
                    and 'total_frames' in results:
                checked = True
                n = int(results['total_frames'])
                if n < self.min_frames:
                    raise ShortVideoError(
                        f'{n} frame(s), fewer than min_frames='
                        f'{self.min_frames}')
        return attach_source(results, info)

    def __getitem__(self, idx: int):
        if not self.skip_bad_videos:
            return super().__getitem__(idx)
        return self._replacer.fetch(
            idx, len(self), super().__getitem__,
            lambda i: _sample_path(self.get_data_info(i)))


@ROOT_DATASETS.register_module()
class SkipBadSamples:
    """Wrap any dataset so that samples failing to load are replaced.

    Works in any scope (registered in mmengine's root registry, so mmpretrain
    and mmaction2 configs find it). See the module documentation for the
    replacement rule and how :class:`DataCheckHook` reports.

    Two ways to write it in a config::

        # nested, as mmengine's dataset wrappers
        dataset=dict(type='SkipBadSamples',
                     dataset=dict(type='CustomDataset', data_root=..., ...))
        # flat: the wrapped type by name, its arguments beside it
        dataset=dict(type='SkipBadSamples', dataset='CustomDataset',
                     data_root=..., pipeline=...)

    The flat form keeps the usual config paths of a dataset
    (``--cfg-options train_dataloader.dataset.data_root=...``,
    ``cfg.test_dataloader.dataset.pipeline`` as mmpretrain's inferencer
    reads it), so the image configs use it. In both forms, keyword
    arguments other than the wrapper's own update the wrapped dataset's
    config (a ``data_root`` set on the wrapper reaches the dataset).

    Args:
        dataset (str | dict | Dataset): The dataset to wrap: a registered
            type name (its arguments are ``**kwargs``), a config dict, or a
            built dataset.
        max_retries (int): Replacements tried per sample. Defaults to 10.
        replace_seed (int): Seed of the replacement indices. Defaults to 0.
        **kwargs: Arguments of the wrapped dataset.
    """

    def __init__(self, dataset, max_retries: int = 10, replace_seed: int = 0,
                 **kwargs):
        if isinstance(dataset, str):
            dataset = dict(type=dataset)
        if isinstance(dataset, dict):
            dataset = ROOT_DATASETS.build(dict(dataset, **kwargs))
        elif kwargs:
            raise TypeError(
                f'SkipBadSamples got dataset arguments {sorted(kwargs)} for '
                f'an already built {type(dataset).__name__}; pass the '
                'dataset as a config (dict or type name) to set them.')
        self.dataset = dataset
        self._replacer = _Replacer(max_retries, replace_seed)

    @property
    def metainfo(self):
        return getattr(self.dataset, 'metainfo', {})

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        get = getattr(self.dataset, 'get_data_info', None)

        def path_of(i):
            return _sample_path(get(i)) if get else f'<index {i}>'

        def load(i):
            data = self.dataset[i]
            return attach_source(data, get(i)) if get else data

        return self._replacer.fetch(idx, len(self), load, path_of)

    def __getattr__(self, name):
        # e.g. get_data_info, full_init, data_list of the wrapped dataset
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)
