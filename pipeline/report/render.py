"""A run's report as one self-contained HTML page: inline styles, charts
as inline SVG, no script and no request to anywhere (it opens offline).
Templated with Jinja2 (in the lock through TFX and kfp; autoescaped)."""

import os
from typing import Any, Dict, Optional

from pipeline.paths import file_problem, write_text
from pipeline.report import charts, facts, graph

TEMPLATES = os.path.join(os.path.dirname(__file__), 'templates')
CHARTS = (
  'timeline',
  'trials',
  'curves',
  'metrics',
  'confusion',
  'calibration',
  'predicted',
  'residuals',
  'lineage',
)


def fmt(value: Any) -> str:
  """A value as the report shows it: numbers to 4 significant digits."""
  if value is None:
    return '—'
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


def threshold_text(threshold: Optional[Dict[str, Any]]) -> str:
  if not threshold:
    return ''
  parts = []
  if threshold.get('lower') is not None:
    parts.append(f'≥ {threshold["lower"]:g}')
  if threshold.get('upper') is not None:
    parts.append(f'≤ {threshold["upper"]:g}')
  if threshold.get('change') is not None:
    parts.append(f'change vs. baseline {threshold["change"]:+g}')
  return ' and '.join(parts)


def histogram(
  feature: Dict[str, Any], width: int = 120, height: int = 28
) -> str:
  """A numeric feature's equal-width histogram as a small inline SVG; its
  total (the examples with a value) is in `data-total`."""
  buckets = feature.get('histogram') or []
  if not buckets:
    return ''
  total = sum(b['count'] for b in buckets)
  return charts.histogram(buckets, width, height).replace(
    '<svg ', f'<svg class="hist" data-total="{total:.0f}" ', 1
  )


def environment():
  """The Jinja2 environment of the report and the dashboard's pages."""
  import jinja2  # pylint: disable=g-import-not-at-top

  env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
  )
  env.filters['fmt'] = fmt
  env.globals.update(
    fmt=fmt, histogram=histogram, threshold_text=threshold_text
  )
  return env


def draw(report: Dict[str, Any]) -> Dict[str, Optional[str]]:
  """The report's charts (inline SVG), by name."""
  run = report['run']
  drawn: Dict[str, Optional[str]] = dict.fromkeys(CHARTS)
  drawn['timeline'] = charts.timeline(run['components'])
  if report['tuning']:
    drawn['trials'] = charts.trials(report['tuning'])
  history = (report['training'] or {}).get('history')
  if history:
    drawn['curves'] = charts.learning_curves(history)
  predictions = (report['training'] or {}).get('predictions')
  if predictions:
    drawn['predicted'] = charts.predicted_vs_actual(predictions)
    drawn['residuals'] = charts.residuals(predictions)
  evaluation = report['evaluation']
  if evaluation:
    overall = evaluation['slices'].get('overall', {}).get('metrics', {})
    drawn['metrics'] = charts.metric_bars(overall, evaluation['thresholds'])
    if evaluation['confusion']:
      drawn['confusion'] = charts.confusion(evaluation['confusion'])
    if evaluation['calibration']:
      drawn['calibration'] = charts.calibration(evaluation['calibration'])
  if report['lineage']:
    drawn['lineage'] = graph.to_svg(report['lineage']['tree'])
  return drawn


def to_html(report: Dict[str, Any], nav: str = '') -> str:
  """The page for `report` (facts.gather); `nav`: links above it (the
  dashboard's), trusted HTML."""
  template = environment().get_template('report.html')
  return template.render(**report, charts=draw(report), nav=nav)


def write(store, run_id: Optional[str], output: str) -> Dict[str, Any]:
  """Writes run `run_id`'s report (the newest run when None) to `output`,
  whole or not at all; returns the run section.

  Raises:
    facts.ReportError: `output` cannot be written (paths.file_problem;
      said before the store is read), no such run, or an unreadable
      artifact.
  """
  problem = file_problem(output)
  if problem:
    raise facts.ReportError(
      f'{output}: cannot write the report here: {problem}'
    )
  report = facts.gather(store, run_id)
  write_text(output, to_html(report), facts.ReportError, 'the report')
  return report['run']
