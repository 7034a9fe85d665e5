"""Draw SparseFormer's RoIs, tubes and sampling points over the input.

Everything here works on a backbone trace, ``backbone(x, return_trace=True)``:
a dict whose ``passes`` list holds, for each sampling pass, the ``rois``
``(B, N, 2*ndim)`` (corners ``(x1, y1, x2, y2)`` or ``(x1, y1, t1, x2, y2,
t2)``) and sampling ``points`` ``(B, N, P, ndim)`` (``(x, y)`` or ``(x, y,
t)``), all normalised to [0, 1].

Sampling uses ``grid_sample(align_corners=False)``, so a normalised
coordinate ``u`` lies at the continuous pixel coordinate ``u * W`` (pixel
``i`` spans ``[i, i+1]``, its centre is ``i + 0.5``); along time ``t * T``
in frame units (frame ``i`` spans ``[i, i+1]``; the stem keeps every frame).
:func:`trace_to_pixels` does this mapping once; the drawing functions take
its output, so other tools can reuse the same pixel-space geometry.

Images are ``(H, W, 3)`` uint8 RGB, videos ``(T, H, W, 3)`` uint8 RGB.
"""
import colorsys
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HEADER = 14  # pixels of title strip above each panel
GAP = 4  # pixels between panels
DISPLAY_SIDE = 256  # auto scale: panels get about this short side


def _numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def trace_to_pixels(trace: dict,
                    input_hw: Sequence[int],
                    num_frames: Optional[int] = None,
                    sample: int = 0) -> List[Dict[str, np.ndarray]]:
    """Map the normalised RoIs and points of every sampling pass to pixels.

    Args:
        trace (dict): ``backbone(x, return_trace=True)``.
        input_hw (Sequence[int]): ``(H, W)`` of the backbone input.
        num_frames (int, optional): ``T`` of a video input; ``None`` for an
            image. Required when the trace holds 3-D tubes.
        sample (int): batch index to take. Defaults to 0.

    Returns:
        list[dict]: one dict per sampling pass, with float arrays in
        continuous pixel coordinates (``0`` is the left/top image edge):

        - ``boxes``: ``(N, 4)`` ``(x1, y1, x2, y2)``.
        - ``points``: ``(N, P, 2)`` ``(x, y)``.
        - video only, ``tspan``: ``(N, 2)`` tube extent ``(t1*T, t2*T)``
          in frame units, and ``points_t``: ``(N, P)`` the points' ``t*T``.
    """
    passes = trace.get('passes') if isinstance(trace, dict) else None
    if not passes:
        raise ValueError('trace has no sampling passes; pass the dict from '
                         'backbone(x, return_trace=True)')
    H, W = int(input_hw[0]), int(input_hw[1])
    out = []
    for p in passes:
        rois = _numpy(p['rois'])[sample]
        points = _numpy(p['points'])[sample]
        ndim = points.shape[-1]
        if rois.shape[-1] != 2 * ndim:
            raise ValueError(f'rois of width {rois.shape[-1]} do not match '
                             f'{ndim}-D points')
        lo, hi = rois[:, :ndim], rois[:, ndim:]
        xy = np.array([W, H], dtype=np.float64)
        item = dict(
            boxes=np.concatenate([lo[:, :2] * xy, hi[:, :2] * xy], axis=1),
            points=points[..., :2] * xy)
        if ndim == 3:
            if num_frames is None:
                raise ValueError('the trace holds 3-D tubes: pass num_frames '
                                 '(the clip length T of the input)')
            item['tspan'] = np.stack([lo[:, 2], hi[:, 2]], axis=1) * num_frames
            item['points_t'] = points[..., 2] * num_frames
        out.append(item)
    return out


def token_colors(num: int) -> np.ndarray:
    """``(num, 3)`` uint8 RGB colours, distinct hues (golden-ratio steps)."""
    cols = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 1.0)
            for i in range(num)]
    return (np.array(cols).reshape(num, 3) * 255).round().astype(np.uint8)


def auto_scale(hw: Sequence[int], side: int = DISPLAY_SIDE) -> int:
    """Integer upscale that brings the short side closest to ``side``
    (never below 1: 64 px -> 4, 224 px -> 1)."""
    return max(1, int(round(side / max(1, min(hw[0], hw[1])))))


def _upscale(img: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return np.ascontiguousarray(img)
    return cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale),
                      interpolation=cv2.INTER_NEAREST)


def frame_tokens(pass_px: dict, frame: int) -> np.ndarray:
    """Tokens whose tube overlaps frame ``frame`` (``[frame, frame+1]``)."""
    t1, t2 = pass_px['tspan'][:, 0], pass_px['tspan'][:, 1]
    return (np.minimum(t1, t2) < frame + 1) & (np.maximum(t1, t2) > frame)


def frame_points(pass_px: dict, frame: int, num_frames: int) -> np.ndarray:
    """``(N, P)`` mask of the points sampled mostly from frame ``frame``.

    A point at ``t*T`` takes its largest trilinear weight from frame
    ``floor(t*T)``; points whose every weight lies outside the clip (more
    than half a frame beyond its ends) sample only padding and are dropped.
    """
    tt = pass_px['points_t']
    nearest = np.clip(np.floor(tt), 0, num_frames - 1)
    inside = np.abs(tt - (nearest + 0.5)) < 1.0
    return (nearest == frame) & inside


def draw_rois(img: np.ndarray,
              pass_px: dict,
              scale: int = 1,
              token_mask: Optional[np.ndarray] = None,
              point_mask: Optional[np.ndarray] = None,
              colors: Optional[np.ndarray] = None,
              alpha: int = 220) -> np.ndarray:
    """Upscale ``img`` and draw each token's box and sampling points.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 RGB, the backbone input.
        pass_px (dict): one entry of :func:`trace_to_pixels`.
        scale (int): integer upscale of the drawing. Defaults to 1.
        token_mask (np.ndarray, optional): ``(N,)`` bool, boxes to draw.
        point_mask (np.ndarray, optional): ``(N, P)`` bool, points to draw
            (default: all points of the drawn tokens).
        colors (np.ndarray, optional): ``(N, 3)`` uint8 colours.
        alpha (int): opacity of the drawing, 0-255. Defaults to 220.

    Returns:
        np.ndarray: ``(H*scale, W*scale, 3)`` uint8.
    """
    boxes, points = pass_px['boxes'] * scale, pass_px['points'] * scale
    N = boxes.shape[0]
    colors = token_colors(N) if colors is None else colors
    token_mask = np.ones(N, bool) if token_mask is None else token_mask
    if point_mask is None:
        point_mask = np.broadcast_to(token_mask[:, None], points.shape[:2])
    base = Image.fromarray(_upscale(img, scale)).convert('RGBA')
    layer = Image.new('RGBA', base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    width = max(1, scale // 2)
    radius = max(1.0, scale * 0.5)
    for i in range(N):
        color = tuple(int(c) for c in colors[i]) + (alpha, )
        if token_mask[i]:
            x1, y1, x2, y2 = boxes[i]
            x1, x2 = sorted((x1, x2))
            y1, y2 = sorted((y1, y2))
            # continuous [x1, x2] covers pixel columns x1 .. x2-1
            draw.rectangle([round(x1), round(y1),
                            max(round(x1), round(x2) - 1),
                            max(round(y1), round(y2) - 1)],
                           outline=color, width=width)
        for x, y in points[i][point_mask[i]]:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                         fill=color)
    return np.asarray(Image.alpha_composite(base, layer).convert('RGB'))


def draw_density(img: np.ndarray,
                 points_xy: np.ndarray,
                 scale: int = 1,
                 sigma: Optional[float] = None,
                 alpha: float = 0.65) -> np.ndarray:
    """Blend a heat map of where ``points_xy`` fall over ``img``.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 RGB.
        points_xy (np.ndarray): ``(K, 2)`` pixel coordinates; points outside
            the image are ignored.
        scale (int): integer upscale. Defaults to 1.
        sigma (float, optional): Gaussian smoothing in input pixels.
            Defaults to ``max(1, min(H, W) / 32)``.
        alpha (float): opacity of the heat map where it peaks.

    Returns:
        np.ndarray: ``(H*scale, W*scale, 3)`` uint8.
    """
    H, W = img.shape[:2]
    sh, sw = H * scale, W * scale
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2) * scale
    hist, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=(sh, sw),
                                range=((0, sh), (0, sw)))
    sigma = max(1.0, min(H, W) / 32) if sigma is None else sigma
    dens = cv2.GaussianBlur(hist.astype(np.float32), (0, 0), sigma * scale)
    dens = dens / dens.max() if dens.max() > 0 else dens
    heat = cv2.applyColorMap((dens * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB).astype(np.float32)
    a = (alpha * dens)[..., None]
    base = _upscale(img, scale).astype(np.float32)
    return (base * (1 - a) + heat * a).round().clip(0, 255).astype(np.uint8)


_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


def with_title(panel: np.ndarray, title: str) -> np.ndarray:
    """Put a white title strip of :data:`HEADER` pixels above ``panel``."""
    h, w = panel.shape[:2]
    canvas = Image.new('RGB', (w, h + HEADER), (255, 255, 255))
    canvas.paste(Image.fromarray(panel), (0, HEADER))
    ImageDraw.Draw(canvas).text((2, 1), title, fill=(0, 0, 0), font=_font())
    return np.asarray(canvas)


def make_grid(panels: Sequence[np.ndarray],
              titles: Optional[Sequence[str]] = None,
              cols: Optional[int] = None) -> np.ndarray:
    """Arrange equally sized panels row-major, :data:`GAP` pixels apart.

    With titles every panel gains a :data:`HEADER` strip. The result is
    ``(rows*ph + (rows-1)*GAP, cols*pw + (cols-1)*GAP, 3)`` for panels of
    ``(ph, pw)`` (``ph`` including the header).
    """
    if titles is not None:
        panels = [with_title(p, t) for p, t in zip(panels, titles)]
    n = len(panels)
    cols = n if cols is None else max(1, min(cols, n))
    rows = -(-n // cols)
    ph, pw = panels[0].shape[:2]
    canvas = np.full((rows * ph + (rows - 1) * GAP,
                      cols * pw + (cols - 1) * GAP, 3), 255, np.uint8)
    for k, p in enumerate(panels):
        r, c = divmod(k, cols)
        canvas[r * (ph + GAP):r * (ph + GAP) + ph,
               c * (pw + GAP):c * (pw + GAP) + pw] = p
    return canvas


def pick_frames(num_frames: int, max_frames: int) -> List[int]:
    """Up to ``max_frames`` evenly spaced frame indices."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    return sorted(set(np.linspace(0, num_frames - 1, max_frames).round()
                      .astype(int).tolist()))


def _check_input(display: np.ndarray) -> None:
    if display.dtype != np.uint8 or display.ndim not in (3, 4) or \
            display.shape[-1] != 3:
        raise ValueError('expected an (H, W, 3) image or a (T, H, W, 3) '
                         f'video of uint8, got {display.dtype} array of '
                         f'shape {display.shape}')


def passes_grid(display: np.ndarray,
                pixels: List[dict],
                scale: Optional[int] = None,
                max_frames: int = 8) -> np.ndarray:
    """The paper's Figure-3 view: RoIs and points of every sampling pass.

    An image gives one row: the input, then one panel per pass. A video gives
    one row per pass (the first row the bare frames) and one column per
    shown frame; a frame shows the boxes of the tubes that cover it and the
    points sampled mostly from it.

    Args:
        display (np.ndarray): ``(H, W, 3)`` or ``(T, H, W, 3)`` uint8 RGB.
        pixels (list[dict]): :func:`trace_to_pixels`.
        scale (int, optional): upscale; default :func:`auto_scale`.
        max_frames (int): frames shown for a video. Defaults to 8.
    """
    _check_input(display)
    scale = auto_scale(display.shape[-3:-1]) if scale is None else scale
    if display.ndim == 3:
        panels = [_upscale(display, scale)]
        titles = ['input']
        for k, px in enumerate(pixels):
            panels.append(draw_rois(display, px, scale))
            titles.append(f'pass {k + 1}')
        return make_grid(panels, titles)
    T = display.shape[0]
    frames = pick_frames(T, max_frames)
    panels = [_upscale(display[f], scale) for f in frames]
    titles = [f'frame {f}' for f in frames]
    for k, px in enumerate(pixels):
        for f in frames:
            panels.append(draw_rois(display[f], px, scale,
                                    token_mask=frame_tokens(px, f),
                                    point_mask=frame_points(px, f, T)))
            titles.append(f'pass {k + 1}, frame {f}')
    return make_grid(panels, titles, cols=len(frames))


def density_panel(display: np.ndarray,
                  pixels: List[dict],
                  scale: Optional[int] = None) -> np.ndarray:
    """The input next to a heat map of all final-pass sampling points (for a
    video: the points of all frames over the middle frame)."""
    _check_input(display)
    scale = auto_scale(display.shape[-3:-1]) if scale is None else scale
    img = display if display.ndim == 3 else display[display.shape[0] // 2]
    pts = pixels[-1]['points'].reshape(-1, 2)
    what = 'all frames' if display.ndim == 4 else 'final pass'
    return make_grid(
        [_upscale(img, scale), draw_density(img, pts, scale)],
        ['input', f'sampling density ({len(pts)} pts, {what})'])


def tube_frames(display: np.ndarray,
                pixels: List[dict],
                scale: Optional[int] = None,
                pass_index: int = -1) -> List[np.ndarray]:
    """One titled panel per frame of a video with the tubes of one pass
    (default the final one) that cover the frame and their points near it."""
    _check_input(display)
    if display.ndim != 4:
        raise ValueError('tube_frames needs a (T, H, W, 3) video')
    scale = auto_scale(display.shape[-3:-1]) if scale is None else scale
    T = display.shape[0]
    px = pixels[pass_index]
    k = pass_index % len(pixels) + 1
    return [with_title(draw_rois(display[f], px, scale,
                                 token_mask=frame_tokens(px, f),
                                 point_mask=frame_points(px, f, T)),
                       f'frame {f}/{T}, pass {k}')
            for f in range(T)]


def save_png(img: np.ndarray, path: str) -> str:
    """Write an RGB uint8 array as PNG (creating the folder)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def save_gif(frames: Sequence[np.ndarray], path: str,
             duration_ms: int = 400) -> str:
    """Write RGB uint8 frames as a looping animated GIF with Pillow."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:],
                   duration=duration_ms, loop=0, disposal=1)
    return path


def visualize_trace(display: np.ndarray,
                    trace: dict,
                    out_dir: str,
                    prefix: str = 'rois',
                    scale: Optional[int] = None,
                    max_frames: int = 8,
                    sample: int = 0) -> List[str]:
    """Write every picture for one input and return the paths written.

    Files (``{prefix}_*``): ``passes.png`` (:func:`passes_grid`),
    ``density.png`` (:func:`density_panel`) and, for a video,
    ``tubes.png`` (all frames of the final pass, 8 per row) and
    ``tubes.gif`` (the same frames animated).

    Args:
        display (np.ndarray): the backbone input as shown, ``(H, W, 3)`` or
            ``(T, H, W, 3)`` uint8 RGB (see
            :func:`sparseformer_mm.visualization.trace_model_input`).
        trace (dict): ``backbone(x, return_trace=True)`` for that input.
        out_dir (str): output folder (created).
        prefix (str): file name prefix. Defaults to 'rois'.
        scale (int, optional): upscale; default :func:`auto_scale`.
        max_frames (int): frames per row in the video passes grid.
        sample (int): batch index in ``trace``. Defaults to 0.
    """
    _check_input(display)
    video = display.ndim == 4
    passes = trace.get('passes') if isinstance(trace, dict) else None
    if passes and video != (passes[0]['points'].shape[-1] == 3):
        kind, other = ('video', 'image') if video else ('image', 'video')
        raise ValueError(f'{kind} input of shape {display.shape} but the '
                         f'trace is from a {other} model')
    pixels = trace_to_pixels(trace, display.shape[-3:-1],
                             display.shape[0] if video else None, sample)
    base = osp.join(out_dir, prefix)
    written = [
        save_png(passes_grid(display, pixels, scale, max_frames),
                 f'{base}_passes.png'),
        save_png(density_panel(display, pixels, scale), f'{base}_density.png'),
    ]
    if video:
        frames = tube_frames(display, pixels, scale)
        written.append(save_png(make_grid(frames, cols=8),
                                f'{base}_tubes.png'))
        written.append(save_gif(frames, f'{base}_tubes.gif'))
    return written
