"""Kinetics-style video data tools: file lists, resizing and checking.

The logic behind the scripts beside it, ``build_file_list.py``,
``resize_videos.py`` and ``check_videos.py`` (they import it by name: a
script's own folder is first on ``sys.path``). The tree these work on is the
one mmaction2's Kinetics configs expect::

    ROOT/
    ├── videos_train/<class>/*.mp4
    ├── videos_val/<class>/*.mp4
    ├── kinetics400_train_list_videos.txt   # "<class>/<file> <label>"
    ├── kinetics400_val_list_videos.txt
    └── classes.txt                          # line i = name of label i

The decoders (``sparseformer_mm.datasets.decoding`` for checking, as the
training pipelines decode; ``cv2`` / ``decord`` for re-encoding) are
imported inside the functions that decode, so importing this module stays
cheap.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import ProgressBar, track_progress

VIDEO_EXTS = ('.mp4', '.webm', '.mkv', '.avi')
SPLITS = ('train', 'val')


def _is_video(name: str, exts: Sequence[str] = VIDEO_EXTS) -> bool:
    # Dot-files are skipped on purpose: resize_videos writes its unfinished
    # outputs as hidden ``.<name>.part<ext>`` files.
    return not name.startswith('.') and name.lower().endswith(tuple(exts))


def _run_tasks(func, tasks: list, num_workers: int, progress: bool) -> list:
    """Map ``func`` over ``tasks``, in a process pool when
    ``num_workers > 1``, with mmengine's progress bar when ``progress``.

    The workers are spawned, not forked: a child forked from a process that
    has decoded with PyAV can hang on a lock FFmpeg held at the fork.
    """
    if not tasks:
        return []
    num_workers = max(1, min(num_workers, len(tasks)))
    if num_workers == 1:
        # No pool for one worker: cheaper and keeps tracebacks readable.
        return track_progress(func, tasks) if progress else \
            [func(t) for t in tasks]
    import multiprocessing
    with multiprocessing.get_context('spawn').Pool(num_workers) as pool:
        results = pool.imap(func, tasks, chunksize=1)
        if not progress:
            return list(results)
        bar, out = ProgressBar(len(tasks)), []
        for res in results:
            out.append(res)
            bar.update()
        return out


def default_num_workers(cap: int = 8) -> int:
    """``min(cap, cpu count)``, the default ``--num-workers`` of the tools."""
    return max(1, min(cap, os.cpu_count() or 1))


# ---------------------------------------------------------------------------
# build_file_list
# ---------------------------------------------------------------------------
def scan_video_tree(folder: str,
                    exts: Sequence[str] = VIDEO_EXTS,
                    keep_empty: bool = False) -> Dict[str, List[str]]:
    """Videos of a ``folder/<class>/<file>`` tree.

    Args:
        folder (str): The split folder, e.g. ``ROOT/videos_train``.
        exts (Sequence[str]): Accepted (lower-case) file extensions.
        keep_empty (bool): Also list class folders without videos (with no
            files); hidden folders (``.name``) are never classes.

    Returns:
        dict: ``{class name: sorted file names}`` for every class folder that
        holds at least one video (any, with ``keep_empty``), in sorted class
        order.

    Raises:
        FileNotFoundError: If ``folder`` is not a directory.
        ValueError: If no video is found in any class sub-folder.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'expected a folder of class sub-folders with videos at '
            f'{folder!r} (layout: {folder}/<class>/*.mp4), but it does not '
            'exist')
    tree = {}
    loose = 0
    for entry in sorted(os.listdir(folder)):
        path = osp.join(folder, entry)
        if osp.isdir(path) and not entry.startswith('.'):
            files = sorted(f for f in os.listdir(path)
                           if _is_video(f, exts)
                           and osp.isfile(osp.join(path, f)))
            if files or keep_empty:
                tree[entry] = files
        elif _is_video(entry, exts):
            loose += 1
    if not any(tree.values()):
        hint = (f'; found {loose} video(s) directly in it, but they must sit '
                'in one sub-folder per class' if loose else '')
        raise ValueError(
            f'no videos ({", ".join(exts)}) found in class sub-folders of '
            f'{folder!r}; expected the layout {folder}/<class>/*.mp4{hint}')
    return tree


def build_file_list(root: str,
                    out_dir: Optional[str] = None,
                    ann_prefix: str = 'kinetics400',
                    splits: Sequence[str] = SPLITS,
                    exts: Sequence[str] = VIDEO_EXTS,
                    skip_empty_classes: bool = False) -> dict:
    """Write mmaction2 ``VideoDataset`` lists for ``ROOT/videos_{split}``.

    Each split gets ``{ann_prefix}_{split}_list_videos.txt`` with sorted
    lines ``<class>/<file> <label>``. Labels are the indices of the sorted
    class names of the *first* split (train), so every split shares one
    label map; it is written as ``classes.txt`` (line ``i`` is the name of
    label ``i``). The first split must exist; later splits are skipped when
    their folder is missing.

    Args:
        root (str): Dataset root holding ``videos_train``, ``videos_val``.
        out_dir (str, optional): Where to write the lists and
            ``classes.txt``. Defaults to ``root``.
        ann_prefix (str): Prefix of the list file names.
            Defaults to ``'kinetics400'``.
        splits (Sequence[str]): Split names; the first one defines the
            classes. Defaults to ``('train', 'val')``.
        exts (Sequence[str]): Accepted video file extensions.
        skip_empty_classes (bool): Leave out class folders of the first
            split that hold no video (every later class's label then moves
            down by one) instead of raising. Defaults to False.

    Returns:
        dict: ``classes`` (list of names), ``class_file`` (path),
        ``skipped`` (empty class folders left out),
        ``ann_files`` and ``counts`` (both ``{split: ...}``, only for the
        splits written).

    Raises:
        FileNotFoundError: If the first split's folder is missing.
        ValueError: If a split folder has no videos, a later split has
            classes the first does not, or a path contains whitespace (which
            the space-separated list format cannot hold).
    """
    out_dir = root if out_dir is None else out_dir
    trees = {}
    for i, split in enumerate(splits):
        folder = osp.join(root, f'videos_{split}')
        if i > 0 and not osp.exists(folder):
            continue  # e.g. a train-only tree
        trees[split] = scan_video_tree(folder, exts, keep_empty=i == 0)

    first = trees[splits[0]]
    empty = [c for c, files in first.items() if not files]
    if empty and not skip_empty_classes:
        # Dropping them silently would shift every later label, so a label
        # map (or a model) made with all the classes would disagree.
        raise ValueError(
            f'{len(empty)} class folder(s) of videos_{splits[0]} hold no '
            f'video ({", ".join(exts)}): {empty[:10]}. Add their videos or '
            'remove the folders; or pass --skip-empty-classes to leave them '
            'out (every later class then gets a label one lower per '
            'skipped folder).')
    for c in empty:
        del first[c]
    classes = list(first)  # already sorted
    label_of = {c: i for i, c in enumerate(classes)}
    for split, tree in trees.items():
        unknown = sorted(set(tree) - set(label_of))
        if unknown:
            raise ValueError(
                f'classes in videos_{split} that videos_{splits[0]} does not '
                f'have (they would have no label): {unknown}')
    bad = [f'{c}/{f}' for tree in trees.values() for c, files in tree.items()
           for f in files if any(ch.isspace() for ch in f'{c}/{f}')]
    if bad:
        # VideoDataset splits each line on whitespace.
        raise ValueError(
            f'{len(bad)} path(s) contain whitespace, which the list format '
            f'cannot hold (rename e.g. spaces to "_"): {bad[:5]}')

    os.makedirs(out_dir, exist_ok=True)
    result = dict(classes=classes, ann_files={}, counts={}, skipped=empty)
    for split, tree in trees.items():
        lines = [f'{c}/{f} {label_of[c]}' for c, files in tree.items()
                 for f in files]
        path = osp.join(out_dir, f'{ann_prefix}_{split}_list_videos.txt')
        with open(path, 'w') as fh:
            fh.write('\n'.join(lines) + '\n')
        result['ann_files'][split] = path
        result['counts'][split] = len(lines)
    result['class_file'] = osp.join(out_dir, 'classes.txt')
    with open(result['class_file'], 'w') as fh:
        fh.write('\n'.join(classes) + '\n')
    return result


# ---------------------------------------------------------------------------
# resize_videos
# ---------------------------------------------------------------------------
def scaled_size(width: int, height: int, short_side: int) -> Tuple[int, int]:
    """``(w, h)`` with the short side ``short_side`` and the aspect kept.

    The long side is rounded to an even number, as most codecs need (and as
    ffmpeg's ``scale=-2:...`` does).
    """
    if min(width, height) <= 0:
        raise ValueError(f'invalid frame size {width}x{height}')
    scale = short_side / min(width, height)
    if width <= height:
        return short_side, max(2, int(round(height * scale / 2)) * 2)
    return max(2, int(round(width * scale / 2)) * 2), short_side


def ffmpeg_resize_cmd(src: str, dst: str, short_side: int) -> List[str]:
    """The ffmpeg command resizing ``src`` to short side ``short_side``."""
    s = int(short_side)
    # The short side becomes s, the other keeps the aspect (-2: even).
    vf = f"scale='if(gt(iw,ih),-2,{s})':'if(gt(iw,ih),{s},-2)'"
    return ['ffmpeg', '-hide_banner', '-loglevel', 'error', '-y', '-i', src,
            '-vf', vf, dst]


def _open_reader(src: str):
    """``(fps, iterator of BGR frames)`` of ``src``, decoded with cv2, or
    with decord where cv2 cannot read a frame.

    cv2 goes first: it decodes sequentially, which is all a re-encode needs,
    and decord 0.6.0 cannot return frames of a few small widths (16, 24, 48,
    72 px) that cv2 reads fine.
    """
    import cv2
    cap = cv2.VideoCapture(src)
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if ok:
        fps = cap.get(cv2.CAP_PROP_FPS)

        def cv2_frames():
            frame = first
            try:
                while frame is not None:
                    yield frame
                    ok, frame = cap.read()
                    frame = frame if ok else None
            finally:
                cap.release()
        return fps, cv2_frames()
    cap.release()
    try:
        import decord
        vr = decord.VideoReader(src, num_threads=1)
    except Exception as e:  # noqa: BLE001  decord raises DECORDError etc.
        raise RuntimeError(f'cannot decode (cv2: no frame; decord: '
                           f'{_first_line(e)})') from e

    def decord_frames():
        for i in range(0, len(vr), 32):  # bounded memory per chunk
            batch = vr.get_batch(list(range(i, min(i + 32, len(vr)))))
            for rgb in batch.asnumpy():
                yield np.ascontiguousarray(rgb[..., ::-1])
    return vr.get_avg_fps(), decord_frames()


def _cv2_resize(src: str, dst: str, short_side: int) -> None:
    """Decode ``src`` and re-encode it resized into ``dst`` (mp4v, no
    audio): the fallback used when ffmpeg is not installed."""
    import cv2
    fps, frames = _open_reader(src)
    if not fps or not np.isfinite(fps) or fps <= 0:
        fps = 30.0  # some containers store no rate
    writer = None
    count = 0
    try:
        for frame in frames:
            h, w = frame.shape[:2]
            if writer is None:
                size = scaled_size(w, h, short_side)
                writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*'mp4v'),
                                         fps, size)
                if not writer.isOpened():
                    raise RuntimeError(f'cv2 cannot write {dst!r}')
                interp = (cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
            writer.write(cv2.resize(frame, size, interpolation=interp))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise RuntimeError('no frame could be decoded')


def _temp_path(dst: str) -> str:
    # Same folder (so the rename is atomic), hidden, and keeping the
    # extension (ffmpeg and cv2 pick the container from it).
    folder, name = osp.split(dst)
    stem, ext = osp.splitext(name)
    return osp.join(folder, f'.{stem}.part{ext}')


def resize_video(src: str,
                 dst: str,
                 short_side: int = 320,
                 backend: str = 'auto') -> None:
    """Resize one video to short side ``short_side``, keeping the aspect.

    The output is written under a temporary name and renamed to ``dst`` only
    once complete, so an existing ``dst`` is always a finished file.

    Args:
        src (str): Input video.
        dst (str): Output path; its folder is created.
        short_side (int): Target length of the shorter side, in pixels.
        backend (str): ``'ffmpeg'``, ``'cv2'`` (decode with decord or cv2,
            encode with cv2's mp4v; drops audio) or ``'auto'`` (ffmpeg when
            it is on ``PATH``). Defaults to ``'auto'``.

    Raises:
        RuntimeError: If decoding or encoding fails.
    """
    backend = resolve_backend(backend)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = _temp_path(dst)
    try:
        if backend == 'ffmpeg':
            res = subprocess.run(ffmpeg_resize_cmd(src, tmp, short_side),
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(
                    f'ffmpeg exited with {res.returncode}: '
                    f'{res.stderr.strip()[-500:]}')
        else:
            _cv2_resize(src, tmp, short_side)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def resolve_backend(backend: str) -> str:
    """Map ``'auto'`` to ``'ffmpeg'`` if it is installed, else ``'cv2'``."""
    if backend not in ('auto', 'ffmpeg', 'cv2'):
        raise ValueError(f'unknown backend {backend!r}; use auto|ffmpeg|cv2')
    if backend == 'auto':
        return 'ffmpeg' if shutil.which('ffmpeg') else 'cv2'
    if backend == 'ffmpeg' and not shutil.which('ffmpeg'):
        raise FileNotFoundError('backend "ffmpeg" asked for, but no ffmpeg '
                                'executable is on PATH')
    return backend


def _resize_task(task):
    rel, src, dst, short_side, backend = task
    try:
        resize_video(src, dst, short_side, backend)
        return rel, None
    except Exception as e:  # noqa: BLE001  report and go on with the rest
        return rel, _first_line(e)


def _dst_name(rel: str, backend: str) -> str:
    # cv2's mp4v encoder cannot fill .webm/.mkv containers: write .mp4.
    if backend == 'cv2':
        return osp.splitext(rel)[0] + '.mp4'
    return rel


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (real paths)."""
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _list_videos(src_root: str, dst_root: str,
                 exts: Sequence[str]) -> List[str]:
    """Relative paths of the videos under ``src_root``, sorted; an output
    folder inside it is never read (a restart would resize its own
    outputs)."""
    rels = []
    for folder, dirs, files in os.walk(src_root):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.')
                         and not _inside(osp.join(folder, d), dst_root))
        rels += [osp.relpath(osp.join(folder, f), src_root)
                 for f in sorted(files) if _is_video(f, exts)]
    return rels


def _refuse_shared_outputs(rels: Sequence[str], backend: str) -> None:
    """Raise if two inputs would be written to one output file."""
    by_dst: Dict[str, List[str]] = {}
    for rel in rels:
        by_dst.setdefault(_dst_name(rel, backend), []).append(rel)
    shared = {d: srcs for d, srcs in by_dst.items() if len(srcs) > 1}
    if not shared:
        return
    listing = '\n'.join(f'  {", ".join(srcs)} -> {d}'
                         for d, srcs in list(shared.items())[:10])
    more = f'\n  ... and {len(shared) - 10} more' if len(shared) > 10 else ''
    raise ValueError(
        f'{len(shared)} output file(s) would each be written from several '
        f'inputs (the {backend} backend writes every video as .mp4), so all '
        f'but one would be lost:\n{listing}{more}\nNothing was written. '
        'A Kinetics clip is one YouTube id, so these are usually the same '
        'clip downloaded twice: remove or rename the extra copy, or install '
        'ffmpeg (--backend ffmpeg keeps each extension).')


def resize_videos(src_root: str,
                  dst_root: str,
                  short_side: int = 320,
                  num_workers: int = 1,
                  backend: str = 'auto',
                  exts: Sequence[str] = VIDEO_EXTS,
                  progress: bool = True) -> dict:
    """Resize every video under ``src_root`` into a mirrored ``dst_root``.

    Videos whose output already exists are skipped, so an interrupted run
    can simply be started again. Every output comes from exactly one input:
    inputs that would share an output name (``x.mkv`` and ``x.mp4`` with
    the ``cv2`` backend, which writes ``.mp4``) are refused before anything
    is written, and a ``dst_root`` inside ``src_root`` is not searched for
    inputs.

    Args:
        src_root (str): Folder searched recursively for videos.
        dst_root (str): Output folder; relative paths are kept (with the
            ``cv2`` backend the extension becomes ``.mp4``). It may lie
            inside ``src_root``, but must not be it or hold it.
        short_side (int): Target short side in pixels. Defaults to 320.
        num_workers (int): Parallel processes. Defaults to 1.
        backend (str): See :func:`resize_video`. Defaults to ``'auto'``.
        exts (Sequence[str]): Accepted video file extensions.
        progress (bool): Show mmengine's progress bar. Defaults to True.

    Returns:
        dict: ``resized`` and ``skipped`` (lists of relative source paths),
        ``failed`` (list of ``(relative path, error)``) and ``backend``.

    Raises:
        FileNotFoundError: If ``src_root`` is not a directory.
        ValueError: If it holds no video, if ``dst_root`` is ``src_root``
            or holds it, or if two inputs would share an output.
    """
    if not osp.isdir(src_root):
        raise FileNotFoundError(f'source folder {src_root!r} does not exist')
    if _inside(src_root, dst_root):
        raise ValueError(
            f'the destination {dst_root!r} is the source {src_root!r} or '
            'holds it, so outputs would be written among the inputs; choose '
            'a destination outside the source (e.g. a sibling folder)')
    backend = resolve_backend(backend)
    rels = _list_videos(src_root, dst_root, exts)
    if not rels:
        raise ValueError(f'no videos ({", ".join(exts)}) found under '
                         f'{src_root!r}')
    _refuse_shared_outputs(rels, backend)
    skipped, tasks = [], []
    for rel in rels:
        dst = osp.join(dst_root, _dst_name(rel, backend))
        if osp.isfile(dst):
            skipped.append(rel)  # finished by an earlier run (atomic rename)
        else:
            tasks.append((rel, osp.join(src_root, rel), dst, short_side,
                          backend))
    results = _run_tasks(_resize_task, tasks, num_workers, progress)
    return dict(
        resized=[rel for rel, err in results if err is None],
        skipped=skipped,
        failed=[(rel, err) for rel, err in results if err is not None],
        backend=backend)


# ---------------------------------------------------------------------------
# check_videos
# ---------------------------------------------------------------------------
def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f'{type(err).__name__}: {lines[0] if lines else ""}'.rstrip(': ')


DEFAULT_CHECK_BACKEND = 'pyav'  # the K400 configs' VideoInit backend


def check_video(path: str, num_frames: int = 3, min_frames: int = 1,
                backend: str = DEFAULT_CHECK_BACKEND) -> Optional[str]:
    """Try to decode ``path`` as training does, with the pipeline's
    decoder (``sparseformer_mm.datasets.decoding.open_video``).

    Opens the file and reads ``num_frames`` frames spread from the first to
    the *last* one: broken or truncated files often open fine and list a
    frame count, then fail when seeking towards the end.

    Args:
        path (str): Video file.
        num_frames (int): Frames to read (at least the first and last).
        min_frames (int): A video with fewer frames is bad, as training's
            ``CheckedVideoDataset(min_frames=...)`` counts it.
        backend (str): ``'pyav'``, ``'decord'`` or ``'torchcodec'``, as the
            config's ``VideoInit(backend=...)``. Defaults to ``'pyav'``.

    Returns:
        str | None: ``None`` if fine, else a one-line error description.
    """
    from sparseformer_mm.datasets.checked_dataset import path_problem
    from sparseformer_mm.datasets.decoding import open_video, read_file
    problem = path_problem(path)
    if problem is not None:
        return problem
    try:
        reader = open_video(read_file(path), path, backend)
        try:
            n = reader.num_frames
            if n == 0:
                return 'no frames'
            if n < min_frames:  # training's ShortVideoError, word for word
                return f'{n} frame(s), fewer than min_frames={min_frames}'
            idx = sorted({int(round(i)) for i in
                          np.linspace(0, n - 1, max(2, num_frames))})
            frames = reader.get_frames(idx)
            if len(frames) != len(idx) or not all(f.size for f in frames):
                return f'read {len(frames)} of {len(idx)} frames'
        finally:
            reader.close()
    except ImportError:
        raise  # the backend is missing, not the video bad
    except Exception as e:  # noqa: BLE001  decoder errors of any library
        # the report names the file already; the size exposes empty and
        # truncated files
        why = _first_line(e).replace(f'{path}: ', '')
        return f'{why} ({osp.getsize(path)} bytes)'
    return None


def config_video_backend(config: str) -> str:
    """The video backend the train / val / test pipelines of ``config``
    decode with (``VideoInit(backend=...)``, ``DecordInit``, ...).

    Raises:
        ValueError: If no pipeline opens videos, or the pipelines use
            different backends (then ``--backend`` must say which).
    """
    from mmengine.config import Config

    from sparseformer_mm.datasets.decoding import pipeline_backend
    cfg = Config.fromfile(config)
    found = {}
    for split in ('train', 'val', 'test'):
        dataset = (cfg.get(f'{split}_dataloader') or {}).get('dataset') or {}
        while isinstance(dataset.get('dataset'), dict):  # wrappers
            dataset = dataset['dataset']
        backend = pipeline_backend(dataset.get('pipeline') or [])
        if backend is not None:
            found[split] = backend
    if not found:
        raise ValueError(f'no pipeline of {config} opens videos (VideoInit, '
                         'DecordInit, PyAVInit, TorchCodecInit); pass '
                         '--backend instead')
    if len(set(found.values())) > 1:
        raise ValueError(f'the pipelines of {config} decode with different '
                         f'backends ({found}); pass --backend for the list '
                         'you check')
    return next(iter(found.values()))


def read_ann_file(ann_file: str, delimiter: str = ' ') -> List[str]:
    """The video paths (first field of each non-empty line) of a list,
    read as training reads it: a UTF-8 byte-order mark is dropped, another
    encoding is an error naming ``file:line``, and an empty list is an
    error."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file!r} does not exist')
    # training's own reader, so both read a list the same way
    from sparseformer_mm.datasets.checked_dataset import read_list_lines
    paths = [ln.strip().split(delimiter)[0]
             for _, ln in read_list_lines(ann_file) if ln.strip()]
    if not paths:
        raise ValueError(f'{ann_file} lists no videos (it is empty or has '
                         'only blank lines); training rejects it too.')
    return paths


def _check_task(task):
    rel, path, num_frames, min_frames, backend = task
    return rel, check_video(path, num_frames, min_frames, backend)


def check_videos(ann_file: str,
                 data_prefix: str = '',
                 num_workers: int = 1,
                 num_frames: int = 3,
                 delimiter: str = ' ',
                 progress: bool = True,
                 min_frames: int = 1,
                 backend: str = DEFAULT_CHECK_BACKEND) -> dict:
    """Decode every video listed in an annotation file.

    Args:
        ann_file (str): List with lines ``<path> [label ...]``.
        data_prefix (str): Folder the listed paths are relative to.
        num_workers (int): Parallel processes. Defaults to 1.
        num_frames (int): Frames read per video, see :func:`check_video`.
        delimiter (str): Field separator of the list. Defaults to ``' '``.
        progress (bool): Show mmengine's progress bar. Defaults to True.
        min_frames (int): Videos with fewer frames are bad (set it as the
            training config's ``min_frames``). Defaults to 1.
        backend (str): Decoder, see :func:`check_video`. Defaults to
            ``'pyav'``.

    Returns:
        dict: ``ok`` (list of listed paths) and ``bad`` (list of
        ``(listed path, error)``), both in list order.
    """
    if data_prefix and not osp.isdir(data_prefix):
        raise FileNotFoundError(
            f'data prefix folder {data_prefix!r} does not exist')
    rels = read_ann_file(ann_file, delimiter)
    if min_frames < 1:
        raise ValueError(f'min_frames must be >= 1, got {min_frames}')
    from sparseformer_mm.datasets.decoding import backend_problem
    problem = backend_problem(backend)  # ValueError for an unknown one
    if problem is not None:
        raise ValueError(f'video backend {backend!r} cannot be used here: '
                         f'{problem}; install it or pick another --backend')
    tasks = [(rel, osp.join(data_prefix, rel), num_frames, min_frames,
              backend) for rel in rels]
    results = _run_tasks(_check_task, tasks, num_workers, progress)
    return dict(ok=[rel for rel, err in results if err is None],
                bad=[(rel, err) for rel, err in results if err is not None])


def print_summary(title: str, groups: Dict[str, list], file=None) -> None:
    """Print ``title: n name, ...`` and then each entry of the error lists
    (those whose items are ``(name, error)`` pairs)."""
    file = sys.stdout if file is None else file
    print(title + ': ' + ', '.join(f'{len(v)} {k}' for k, v in groups.items()),
          file=file)
    for key, items in groups.items():
        for item in items:
            if isinstance(item, tuple):
                print(f'  {key}: {item[0]}: {item[1]}', file=file)
