"""Video decoding transforms with a choice of backend: decord, PyAV or
torchcodec, giving the same frames for the same indices.

:class:`VideoInit` / :class:`VideoDecode` (mmaction2 ``TRANSFORMS``) replace
the pair ``DecordInit`` / ``DecordDecode`` in a pipeline; ``backend`` picks
the library::

    dict(type='VideoInit', backend='pyav'),  # or 'decord', 'torchcodec'
    dict(type='SampleFrames', clip_len=32, frame_interval=2, num_clips=1),
    dict(type='VideoDecode'),

``TorchCodecInit`` / ``TorchCodecDecode`` are the same pair with
``backend='torchcodec'``, named like mmaction2's ``DecordInit`` and
``PyAVInit``.

What "the same frames" means (checked frame for frame in
``tests/datasets/test_decoding.py`` and measured in ``docs/decoding.md``):

* frame ``i`` is the ``i``-th frame in presentation order, converted to RGB
  by FFmpeg's swscale (all three libraries call it the same way, so the
  pixels are equal, not only close);
* ``total_frames`` counts the video stream's packets, as decord does,
  except packets an edit list marks to be dropped (decord counts those too,
  and returns its last frame for the extra indices; PyAV and torchcodec do
  not count them);
* a rotation stored in the file (display matrix) is applied, as decord and
  torchcodec do;
* ``avg_fps`` is the stream's average frame rate, as ``DecordInit`` sets it.

The PyAV reader is ours rather than mmaction2's ``PyAVInit`` /
``PyAVDecode``: those take ``total_frames`` from the container header (0 for
mkv and webm), decode every frame from the start up to the last index and
keep all of them as RGB arrays (about 0.8 GB for 300 frames at 720p), wrap
indices past the decoded frames silently, and ignore rotation. Ours indexes
the packets once, seeks to the keyframe before each wanted frame, as decord
does, and converts only the wanted frames.

A file that cannot be opened or decoded raises :class:`VideoDecodeError`
naming the file and the backend; a backend that is not installed raises
``ImportError`` saying what to install.
"""
import bisect
import io
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

BACKENDS = ('decord', 'pyav', 'torchcodec')

_INSTALL = {
    'decord': 'pip install decord  (it is in requirements/runtime.txt)',
    'pyav': 'pip install av  (it is in requirements/runtime.txt)',
    'torchcodec': (
        'pip install torchcodec, plus FFmpeg 4-9 shared libraries: '
        '"apt-get install ffmpeg" (Debian/Ubuntu) or "conda install -c '
        'conda-forge ffmpeg" (see docs/decoding.md)'),
}


class VideoDecodeError(RuntimeError):
    """A video that its backend cannot open or decode."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0] if text else ""}'


def torchcodec_problem() -> Optional[str]:
    """Why torchcodec cannot decode here, or ``None`` if it can.

    torchcodec imports without FFmpeg (its image decoders need none) and
    fails only when a video decoder is built, so loading its FFmpeg-linked
    core is the real test.
    """
    try:
        import torchcodec  # noqa: F401
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except ImportError as e:
        return f'torchcodec is not installed ({_first_line(e)})'
    try:
        from torchcodec._core.ops import load_core_libraries
    except ImportError:  # another torchcodec layout: try it on first use
        return None
    try:
        load_core_libraries()
    except Exception:  # noqa: BLE001  its error is a 60-line traceback
        return ('torchcodec is installed but finds no FFmpeg 4-9 shared '
                'libraries (libavcodec, libavformat, ...)')
    return None


def backend_problem(backend: str) -> Optional[str]:
    """Why ``backend`` cannot be used here, or ``None`` if it can.

    Args:
        backend (str): One of :data:`BACKENDS`.

    Raises:
        ValueError: If ``backend`` is not one of :data:`BACKENDS`.
    """
    _check_backend(backend)
    if backend == 'torchcodec':
        return torchcodec_problem()
    module = {'decord': 'decord', 'pyav': 'av'}[backend]
    try:
        __import__(module)
    except ImportError as e:
        return f'{module} is not installed ({_first_line(e)})'
    return None


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f'unknown video backend {backend!r}; choose one of '
                         f'{", ".join(BACKENDS)}')


def _require(backend: str) -> None:
    problem = backend_problem(backend)
    if problem:
        raise ImportError(f'video backend {backend!r} cannot be used: '
                          f'{problem}. Install: {_INSTALL[backend]}')


class VideoReader:
    """An opened video: frame count, frame rate and frames by index.

    Built by :func:`open_video`; subclasses wrap one library each.

    Attributes:
        backend (str): The library's name in :data:`BACKENDS`.
        filename (str): The file, for messages.
        num_frames (int): Frames that indices may address.
        fps (float): Average frame rate of the video stream.
    """
    backend = ''

    def __init__(self, filename: str):
        self.filename = filename
        self.num_frames = 0
        self.fps = 0.0

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError(f'{self.filename}: no frame indices to decode')
        bad = idx[(idx < 0) | (idx >= self.num_frames)]
        if bad.size:
            raise IndexError(
                f'{self.filename}: frame index {int(bad[0])} is out of range '
                f'for its {self.num_frames} frames ({self.backend})')
        return idx

    def get_frames(self, indices: Sequence[int]) -> List[np.ndarray]:
        """RGB uint8 frames ``(H, W, 3)``, one per index, in that order.

        Repeated indices give separate arrays, so in-place transforms (e.g.
        mmaction2's ``Flip``) change each position once.
        """
        idx = self._check_indices(indices)
        try:
            batch = self._decode_batch(idx.tolist())
        except Exception as e:  # noqa: BLE001  each library raises its own
            raise VideoDecodeError(f'{self.filename}: {self.backend} failed '
                                   f'to decode frames ({_first_line(e)})'
                                   ) from e
        return list(batch)

    def _decode_batch(self, indices: List[int]) -> np.ndarray:
        """``(N, H, W, 3)`` frames of a library that decodes a batch."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the decoder (the reader is not used after this)."""


class DecordReader(VideoReader):
    """decord's ``VideoReader`` (the one ``DecordInit`` builds)."""
    backend = 'decord'

    def __init__(self, data: bytes, filename: str, num_threads: int = 1):
        super().__init__(filename)
        import decord
        try:
            self._vr = decord.VideoReader(io.BytesIO(data),
                                          num_threads=num_threads)
        except Exception as e:  # noqa: BLE001  decord raises DECORDError
            raise VideoDecodeError(f'{filename}: decord cannot open it '
                                   f'({_first_line(e)})') from e
        self.num_frames = len(self._vr)
        self.fps = float(self._vr.get_avg_fps())

    def _decode_batch(self, indices):
        return self._vr.get_batch(indices).asnumpy()

    def close(self):
        self._vr = None


class PyAVReader(VideoReader):
    """PyAV (FFmpeg bundled in its wheel), indexed and seeking as decord.

    At open, the video stream's packets are read (not decoded) once: their
    presentation timestamps, sorted, are the frames; keyframe packets are
    the seek points. Packets an edit list discards are left out (FFmpeg's
    decoder drops their frames).
    """
    backend = 'pyav'

    def __init__(self, data: bytes, filename: str, num_threads: int = 1):
        super().__init__(filename)
        import av
        try:
            self._container = av.open(io.BytesIO(data))
            streams = self._container.streams
            if not streams.video:
                raise VideoDecodeError('it has no video stream')
            # the stream decord picks (av_find_best_stream)
            self._stream = streams.best('video')
            self._index()
        except VideoDecodeError as e:
            raise VideoDecodeError(f'{filename}: {e}') from e
        except Exception as e:  # noqa: BLE001  av.error.* and OSError
            raise VideoDecodeError(f'{filename}: PyAV cannot open it '
                                   f'({_first_line(e)})') from e
        ctx = self._stream.codec_context
        ctx.thread_count = num_threads
        if num_threads != 1:
            ctx.thread_type = 'AUTO'
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        # A reformatter of our own: PyAV's shared one keeps a swscale
        # context whose slice threads a forked dataloader worker does not
        # have, and freeing it there waits forever.
        from av.video.reformatter import VideoReformatter
        self._reformatter = VideoReformatter()

    def _index(self) -> None:
        pts, keys = [], []
        for packet in self._container.demux(self._stream):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            if packet.pts is None:
                raise VideoDecodeError(
                    'its video packets carry no timestamps (a raw stream?); '
                    'remux it into mp4 or use backend="decord"')
            if packet.is_keyframe:
                # a seek point even when discarded: an edit list may start
                # the video after the keyframe its first frames need
                keys.append(packet.pts)
            if not packet.is_discard:
                pts.append(packet.pts)
        if not pts:
            raise VideoDecodeError('its video stream has no frames')
        self._pts = sorted(pts)
        self._keys = sorted(keys) or [self._pts[0]]
        self.num_frames = len(self._pts)

    def _seek(self, target_pts: int, earliest: bool = False):
        """Seek to the last keyframe at or before ``target_pts`` (or to the
        first one) and return a fresh frame iterator."""
        i = bisect.bisect_right(self._keys, target_pts) - 1
        key = self._keys[0] if earliest or i < 0 else self._keys[i]
        self._container.seek(key, stream=self._stream, backward=True,
                             any_frame=False)
        return self._container.decode(self._stream)

    def _rgb(self, frame) -> np.ndarray:
        img = self._reformatter.reformat(frame, format='rgb24').to_ndarray()
        # Display-matrix rotation (phone videos), as decord and torchcodec
        # apply it; rotation is counter-clockwise degrees.
        turns = int(round(getattr(frame, 'rotation', 0) or 0)) // 90 % 4
        if turns:
            img = np.rot90(img, turns)
        return np.ascontiguousarray(img)

    def get_frames(self, indices):
        idx = self._check_indices(indices)
        wanted = sorted({self._pts[i] for i in idx.tolist()})
        wanted_set = set(wanted)
        got: Dict[int, np.ndarray] = {}
        frames, last = None, None
        try:
            for target in wanted:
                if target in got:
                    continue
                # Seek unless the target lies ahead in the current GOP:
                # decoding on is then cheaper, as in decord.
                key = self._keys[max(0, bisect.bisect_right(
                    self._keys, target) - 1)]
                if frames is None or last is None or last >= target \
                        or key > last:
                    frames, last = self._seek(target), None
                last = self._decode_until(frames, target, wanted_set, got,
                                          last)
                if target not in got and last is not None and last > target:
                    # The seek landed after the target (a container whose
                    # seek index is coarser than its keyframes): start over
                    # from the first keyframe.
                    frames = self._seek(target, earliest=True)
                    last = self._decode_until(frames, target, wanted_set,
                                              got, None)
                if target not in got:
                    raise VideoDecodeError(
                        f'{self.filename}: frame {self._pts.index(target)} of '
                        f'{self.num_frames} (pts {target}) was not decoded; '
                        'the file is probably truncated or corrupt')
        except VideoDecodeError:
            raise
        except Exception as e:  # noqa: BLE001  av.error.*
            raise VideoDecodeError(f'{self.filename}: PyAV failed to decode '
                                   f'frames ({_first_line(e)})') from e
        out, used = [], set()
        for i in idx.tolist():
            pts = self._pts[i]
            out.append(got[pts].copy() if pts in used else got[pts])
            used.add(pts)
        return out

    def _decode_until(self, frames, target, wanted_set, got, last):
        """Decode from ``frames`` until a frame at or after ``target``;
        keep the wanted ones. Returns the pts of the last frame decoded."""
        for frame in frames:
            if frame.pts is None:
                continue
            last = frame.pts
            if last in wanted_set and last not in got:
                got[last] = self._rgb(frame)
            if last >= target:
                break
        return last

    def close(self):
        if self._container is not None:
            self._container.close()
            self._container = None


class TorchCodecReader(VideoReader):
    """torchcodec's ``VideoDecoder`` (exact seek mode: it scans the file
    once at open, as decord does)."""
    backend = 'torchcodec'

    def __init__(self, data: bytes, filename: str, num_threads: int = 1):
        super().__init__(filename)
        from torchcodec.decoders import VideoDecoder
        try:
            self._dec = VideoDecoder(data, seek_mode='exact',
                                     dimension_order='NHWC',
                                     num_ffmpeg_threads=num_threads)
            meta = self._dec.metadata
        except Exception as e:  # noqa: BLE001  RuntimeError / ValueError
            raise VideoDecodeError(f'{filename}: torchcodec cannot open it '
                                   f'({_first_line(e)})') from e
        self.num_frames = int(meta.num_frames or 0)
        self.fps = float(meta.average_fps or 0.0)

    def _decode_batch(self, indices):
        return self._dec.get_frames_at(indices).data.numpy()

    def close(self):
        self._dec = None


_READERS = {'decord': DecordReader, 'pyav': PyAVReader,
            'torchcodec': TorchCodecReader}


def open_video(data: bytes, filename: str, backend: str = 'decord',
               num_threads: int = 1) -> VideoReader:
    """Open a video held in memory with one backend.

    Args:
        data (bytes): The file's content.
        filename (str): Its name, for messages.
        backend (str): One of :data:`BACKENDS`. Defaults to ``'decord'``.
        num_threads (int): Decoder threads (1: one per dataloader worker,
            as ``DecordInit`` defaults to; 0: FFmpeg picks). Defaults to 1.

    Returns:
        VideoReader: The opened video.

    Raises:
        ValueError: Unknown backend.
        ImportError: The backend is not installed (the message says how).
        VideoDecodeError: The file cannot be opened.
    """
    _check_backend(backend)
    _require(backend)
    if not data:
        raise VideoDecodeError(f'{filename}: the file is empty')
    return _READERS[backend](data, filename, num_threads)


def read_file(filename: str, io_backend: str = 'disk', **kwargs) -> bytes:
    """The bytes of ``filename`` through mmengine's file backends
    (``'disk'``, ``'petrel'``, ``'http'``, ...), as ``DecordInit`` reads
    them."""
    from mmengine import fileio
    if io_backend == 'disk' and not kwargs:
        with open(filename, 'rb') as f:
            return f.read()
    backend = 'local' if io_backend == 'disk' else io_backend
    return fileio.get(filename, backend_args=dict(backend=backend, **kwargs))


@TRANSFORMS.register_module()
class VideoInit(BaseTransform):
    """Open a video with the chosen backend (in place of ``DecordInit``).

    Required keys: ``filename``. Added keys: ``video_reader``,
    ``total_frames``, ``avg_fps``.

    Args:
        backend (str): ``'decord'``, ``'pyav'`` or ``'torchcodec'``.
            Defaults to ``'decord'``.
        io_backend (str): mmengine file backend. Defaults to ``'disk'``.
        num_threads (int): Decoder threads per video. Defaults to 1.
        **kwargs: Arguments of the file backend.
    """

    def __init__(self, backend: str = 'decord', io_backend: str = 'disk',
                 num_threads: int = 1, **kwargs) -> None:
        _check_backend(backend)
        self.backend = backend
        self.io_backend = io_backend
        self.num_threads = num_threads
        self.kwargs = kwargs

    def transform(self, results: Dict) -> Dict:
        """Open ``results['filename']``; set its reader, frame count and
        frame rate."""
        filename = results['filename']
        # as DecordInit: a name without extension means .mp4
        if osp.splitext(filename)[0] == filename:
            filename = filename + '.mp4'
        data = read_file(filename, self.io_backend, **self.kwargs)
        reader = open_video(data, filename, self.backend, self.num_threads)
        results['video_reader'] = reader
        results['total_frames'] = reader.num_frames
        results['avg_fps'] = reader.fps
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(backend={self.backend!r}, '
                f'io_backend={self.io_backend!r}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class VideoDecode(BaseTransform):
    """Decode the frames at ``frame_inds`` (in place of ``DecordDecode``).

    Required keys: ``video_reader`` (from :class:`VideoInit`),
    ``frame_inds``. Added keys: ``imgs``, ``original_shape``,
    ``img_shape``; ``gt_bboxes`` and ``proposals`` are scaled to pixels as
    ``DecordDecode`` does.
    """

    def transform(self, results: Dict) -> Dict:
        """Decode the sampled frames and free the reader."""
        reader = results['video_reader']
        if not isinstance(reader, VideoReader):
            raise TypeError(
                f'{self.__class__.__name__} needs the reader VideoInit opens, '
                f'got {type(reader).__name__}: pair VideoInit with '
                'VideoDecode (DecordInit goes with DecordDecode)')
        if results['frame_inds'].ndim != 1:
            results['frame_inds'] = np.squeeze(results['frame_inds'])
        try:
            imgs = reader.get_frames(results['frame_inds'])
        finally:
            reader.close()
        results['video_reader'] = None
        results['imgs'] = imgs
        results['original_shape'] = imgs[0].shape[:2]
        results['img_shape'] = imgs[0].shape[:2]
        if 'gt_bboxes' in results:
            h, w = results['img_shape']
            scale = np.array([w, h, w, h])
            results['gt_bboxes'] = (results['gt_bboxes'] * scale).astype(
                np.float32)
            if results.get('proposals') is not None:
                results['proposals'] = (results['proposals'] * scale).astype(
                    np.float32)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'


@TRANSFORMS.register_module()
class TorchCodecInit(VideoInit):
    """:class:`VideoInit` with ``backend='torchcodec'``."""

    def __init__(self, io_backend: str = 'disk', num_threads: int = 1,
                 **kwargs) -> None:
        super().__init__('torchcodec', io_backend, num_threads, **kwargs)


@TRANSFORMS.register_module()
class TorchCodecDecode(VideoDecode):
    """:class:`VideoDecode`, named to pair with :class:`TorchCodecInit`."""


# the transforms that open a video, and the backend each decodes with
_OPENERS = {'DecordInit': 'decord', 'PyAVInit': 'pyav',
            'TorchCodecInit': 'torchcodec'}


def pipeline_backend(pipeline: Sequence[dict]) -> Optional[str]:
    """The backend a pipeline config decodes videos with (``VideoInit``'s
    ``backend``, or the library of ``DecordInit`` / ``PyAVInit`` /
    ``TorchCodecInit``), or ``None`` if it opens no video."""
    for t in pipeline:
        kind = t.get('type', '')
        kind = getattr(kind, '__name__', str(kind)).split('.')[-1]
        if kind == 'VideoInit':
            return t.get('backend', 'decord')
        if kind in _OPENERS:
            return _OPENERS[kind]
    return None
