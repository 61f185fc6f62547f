"""The report's charts: matplotlib figures as inline SVG.

matplotlib is already in the lock (the fine-tuning comparison's plot), draws
offline, and its SVG backend needs no browser script. Text stays text
(`svg.fonttype: none`), so the numbers on a chart are in the page.
"""

import io
import re
from typing import Any, Dict, List, Optional, Sequence

_PALETTE = (
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
)
_STATE_COLOURS = {
  'complete': '#2ca02c',
  'cached': '#9ecae1',
  'failed': '#d62728',
  'running': '#ff7f0e',
  'canceled': '#7f7f7f',
  'new': '#bbbbbb',
}


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('svg')
  matplotlib.rcParams.update(
    {
      'svg.fonttype': 'none',
      'svg.hashsalt': 'report',
      'font.size': 9,
      'axes.spines.top': False,
      'axes.spines.right': False,
    }
  )
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def _svg(fig, tight: bool = True) -> str:
  """The figure as inline SVG; `tight`: cropped to what is drawn (else the
  figure's own size)."""
  plt = _pyplot()
  out = io.StringIO()
  fig.savefig(
    out,
    format='svg',
    bbox_inches='tight' if tight else None,
    metadata={'Date': None},
  )
  plt.close(fig)
  text = out.getvalue()
  text = text[text.index('<svg') :]  # inline: no XML prolog or doctype
  return re.sub(r'<metadata>.*?</metadata>', '', text, flags=re.DOTALL)


def timeline(components: Sequence[Dict[str, Any]]) -> Optional[str]:
  """Each component's span from the run's start, coloured by its state."""
  if not components:
    return None
  plt = _pyplot()
  start = min(c['start_ms'] for c in components)
  fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(components) + 0.8))
  for row, c in enumerate(components):
    left = (c['start_ms'] - start) / 1000
    width = max((c['end_ms'] - c['start_ms']) / 1000, 0.05)
    ax.barh(
      row, width, left=left, color=_STATE_COLOURS.get(c['state'], '#bbbbbb')
    )
    ax.text(
      left + width,
      row,
      f' {c["seconds"]:.1f}s {c["state"]}',
      va='center',
      fontsize=8,
    )
  ax.set_yticks(range(len(components)), [c['id'] for c in components])
  ax.invert_yaxis()
  ax.set_xlabel('seconds since the run started')
  ax.margins(x=0.18)
  return _svg(fig)


def trial_numbers(trials: Sequence[Dict[str, Any]]) -> List[int]:
  """Each trial's place on the chart: its id as a number, as the table
  names it (Keras Tuner's ids count from 00); a trial whose id is not a
  number, by its place in the list, also from 0."""
  if all(
    str(t['trial_id']).isascii() and str(t['trial_id']).isdigit()
    for t in trials
  ):
    return [int(t['trial_id']) for t in trials]
  return list(range(len(trials)))


def trials(report: Dict[str, Any]) -> Optional[str]:
  """The objective of every trial in order, the best marked; for a
  Hyperband search also against the epochs each trial trained to."""
  done = [t for t in report.get('trials', []) if t.get('score') is not None]
  if not done:
    return None
  plt = _pyplot()
  hyperband = report.get('algorithm') == 'hyperband'
  fig, axes = plt.subplots(
    1,
    2 if hyperband else 1,
    figsize=(7.5 if hyperband else 4.5, 2.8),
    squeeze=False,
  )
  best = (report.get('best') or {}).get('trial_id')
  order = trial_numbers(done)
  scores = [t['score'] for t in done]
  ax = axes[0][0]
  ax.plot(order, scores, 'o', color=_PALETTE[0], label='trial')
  for i, t in enumerate(done):
    if t['trial_id'] == best:
      ax.plot(
        order[i],
        t['score'],
        '*',
        color=_PALETTE[3],
        markersize=14,
        label=f'best ({t["score"]:.4f})',
      )
  ax.set_xlabel('trial (as numbered in the table)')
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.set_ylabel(report.get('objective', 'objective'))
  ax.legend(frameon=False, fontsize=8)
  if hyperband:
    ax = axes[0][1]
    ax.plot(
      [t.get('epochs') or 0 for t in done], scores, 'o', color=_PALETTE[1]
    )
    ax.set_xlabel('epochs trained')
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(report.get('objective', 'objective'))
  fig.tight_layout()
  return _svg(fig)


def learning_curves(history: Dict[str, Any]) -> Optional[str]:
  """Loss and each other metric per epoch, train and validation; where
  early stopping stopped and which epoch it kept."""
  metrics = history.get('metrics') or {}
  names = [k for k in metrics if not k.startswith('val_')]
  if not names:
    return None
  plt = _pyplot()
  fig, axes = plt.subplots(
    1, len(names), figsize=(3.2 * len(names), 2.6), squeeze=False
  )
  stopping = history.get('early_stopping') or {}
  for ax, name in zip(axes[0], names, strict=True):
    epochs = list(range(1, len(metrics[name]) + 1))
    ax.plot(epochs, metrics[name], color=_PALETTE[0], label='train')
    if f'val_{name}' in metrics:
      ax.plot(
        epochs, metrics[f'val_{name}'], color=_PALETTE[1], label='validation'
      )
    if stopping.get('best_epoch'):
      ax.axvline(
        stopping['best_epoch'],
        color='#7f7f7f',
        linestyle='--',
        linewidth=1,
        label=f'kept: epoch {stopping["best_epoch"]}',
      )
    ax.set_title(name)
    ax.set_xlabel('epoch')
  axes[0][0].legend(frameon=False, fontsize=8)
  fig.tight_layout()
  return _svg(fig)


def metric_bars(
  overall: Dict[str, Dict[str, float]], thresholds: Dict[str, Dict[str, Any]]
) -> Optional[str]:
  """The overall slice's metrics: candidate (bar) and baseline (dot), with
  the thresholds drawn as red lines."""
  names = [
    n for n in overall if n != 'example_count' and 'candidate' in overall[n]
  ]
  if not names:
    return None
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 0.8))
  for row, name in enumerate(names):
    values = overall[name]
    ax.barh(
      row,
      values['candidate'],
      color=_PALETTE[0],
      height=0.6,
      label='candidate' if row == 0 else None,
    )
    ax.text(
      values['candidate'],
      row,
      f' {values["candidate"]:.4f}',
      va='center',
      fontsize=8,
    )
    if 'baseline' in values:
      ax.plot(
        values['baseline'],
        row,
        'o',
        color=_PALETTE[1],
        label='baseline'
        if 'baseline' not in ax.get_legend_handles_labels()[1]
        else None,
      )
    for bound in ('lower', 'upper'):
      value = (thresholds.get(name) or {}).get(bound)
      if value is not None:
        ax.plot(
          [value, value],
          [row - 0.4, row + 0.4],
          color=_PALETTE[3],
          linewidth=2,
          label='threshold'
          if 'threshold' not in ax.get_legend_handles_labels()[1]
          else None,
        )
  ax.set_yticks(range(len(names)), names)
  ax.invert_yaxis()
  ax.margins(x=0.2)
  ax.legend(frameon=False, fontsize=8, loc='lower right')
  return _svg(fig)


def confusion(matrix: Dict[str, Any]) -> Optional[str]:
  rows: List[List[float]] = matrix['rows']
  if not rows:
    return None
  plt = _pyplot()
  size = len(rows)
  fig, ax = plt.subplots(figsize=(1.0 + 0.7 * size, 0.8 + 0.7 * size))
  ax.imshow(rows, cmap='Blues')
  peak = max(max(r) for r in rows) or 1
  for i, row in enumerate(rows):
    for j, value in enumerate(row):
      ax.text(
        j,
        i,
        f'{value:g}',
        ha='center',
        va='center',
        color='white' if value > peak / 2 else 'black',
      )
  ax.set_xticks(range(size), matrix['labels'])
  ax.set_yticks(range(size), matrix['labels'])
  ax.set_xlabel('predicted')
  ax.set_ylabel('actual')
  return _svg(fig)


def calibration(buckets: List[Dict[str, float]]) -> Optional[str]:
  if not buckets:
    return None
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(3.2, 3.0))
  ax.plot(
    [0, 1],
    [0, 1],
    color='#7f7f7f',
    linestyle='--',
    linewidth=1,
    label='perfect',
  )
  # One dot per bin, its area by the examples in it: a bin of two examples
  # says little, and the eye should see that.
  peak = max(b['count'] for b in buckets)
  ax.scatter(
    [b['predicted'] for b in buckets],
    [b['observed'] for b in buckets],
    s=[20 + 180 * b['count'] / peak for b in buckets],
    color=_PALETTE[0],
    alpha=0.8,
    label='model (area: examples)',
  )
  for b in buckets:
    ax.annotate(
      f'{b["count"]:.0f}',
      (b['predicted'], b['observed']),
      textcoords='offset points',
      xytext=(6, -10),
      fontsize=7,
    )
  ax.set_xlabel('mean predicted probability')
  ax.set_ylabel('observed rate')
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.legend(frameon=False, fontsize=8)
  return _svg(fig)


def predicted_vs_actual(predictions: Dict[str, List[float]]) -> Optional[str]:
  """Regression: each eval row's prediction against its label, with the
  line where they are equal."""
  labels, predicted = predictions['label'], predictions['prediction']
  if not labels:
    return None
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(3.2, 3.0))
  low, high = min(labels + predicted), max(labels + predicted)
  ax.plot(
    [low, high],
    [low, high],
    color='#7f7f7f',
    linestyle='--',
    linewidth=1,
    label='prediction = label',
  )
  ax.scatter(
    labels,
    predicted,
    s=8,
    color=_PALETTE[0],
    alpha=0.6,
    label=f'{len(labels)} eval rows',
  )
  ax.set_xlabel('label')
  ax.set_ylabel('prediction')
  ax.legend(frameon=False, fontsize=8)
  return _svg(fig)


def residuals(predictions: Dict[str, List[float]]) -> Optional[str]:
  """Regression: the histogram of prediction - label over the eval rows."""
  errors = [
    p - y
    for p, y in zip(
      predictions['prediction'], predictions['label'], strict=True
    )
  ]
  if not errors:
    return None
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(3.2, 3.0))
  ax.hist(errors, bins=20, color=_PALETTE[0], alpha=0.8)
  ax.axvline(0, color='#7f7f7f', linestyle='--', linewidth=1)
  ax.set_xlabel('residual (prediction - label)')
  ax.set_ylabel('eval rows')
  return _svg(fig)


def histogram(
  buckets: Sequence[Dict[str, float]], width: int, height: int
) -> str:
  """Equal-width buckets as bars filling `width` x `height` pixels, with no
  axes (a picture for a table cell); each bar's range and count is its
  tooltip."""
  from matplotlib.patches import Rectangle  # pylint: disable=g-import-not-at-top

  plt = _pyplot()
  # SVG user units are points at 72 per inch: one unit, one pixel.
  fig = plt.figure(figsize=(width / 72, height / 72))
  fig.patch.set_visible(False)  # the table cell's background shows
  peak = max(b['count'] for b in buckets) or 1
  step = 1 / len(buckets)
  # Bars straight on the figure, in its fractions: an Axes would cost
  # several times the drawing, for a report with dozens of these.
  for i, b in enumerate(buckets):
    fig.add_artist(
      Rectangle(
        (i * step, 0),
        step - 1 / width,
        b['count'] / peak,
        facecolor=_PALETTE[0],
        linewidth=0,
        gid=f'bucket{i}',
      )
    )
  text = _svg(fig, tight=False)
  text = re.sub(
    r'width="[^"]*pt" height="[^"]*pt"',
    f'width="{width}" height="{height}"',
    text,
    count=1,
  )
  for i, b in enumerate(buckets):
    text = text.replace(
      f'<g id="bucket{i}">',
      f'<g id="bucket{i}"><title>{b["low"]:.4g} to {b["high"]:.4g}: '
      f'{b["count"]:.0f}</title>',
      1,
    )
  return text
