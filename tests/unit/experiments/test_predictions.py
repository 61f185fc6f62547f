"""`python -m pipeline predictions RUN --output FILE.csv`: a run's eval
split with its model's outputs, which a user scores a baseline against;
and the split itself, reproduced from its rows' bytes as the README says.

Without a pipeline: refusals (an unknown run, a special file to write)
against an empty store. With the shared cold run (e2e): the CSV has the
eval split's rows and the Evaluator's metrics come out of it again.
"""

import os

import pytest

from pipeline.metadata import lineage
from tests.conftest import REPO, cli
from tests.unit.runners.test_faults import refused


def _empty_store(tmp_path):
  from pipeline.metadata import store as metadata_lib  # pylint: disable=g-import-not-at-top

  path = str(tmp_path / 'metadata.sqlite')
  metadata_lib.open_store(path, readonly=False)
  return path


def test_an_unknown_run_is_one_line_and_writes_nothing(tmp_path):
  store = _empty_store(tmp_path)
  output = str(tmp_path / 'eval.csv')
  proc = cli('predictions', 'no-such-run', '--store', store, '--output', output)
  refused(proc, 'no-such-run: no such run in the store')
  assert sorted(os.listdir(tmp_path)) == ['metadata.sqlite']


def test_a_special_file_is_refused_before_anything_runs(tmp_path):
  store = _empty_store(tmp_path)
  fifo = str(tmp_path / 'fifo.csv')
  os.mkfifo(fifo)
  for output, words in (
    (fifo, 'a named pipe (FIFO)'),
    ('/proc/version', 'a kernel file'),
    (str(tmp_path), 'a folder'),
  ):
    proc = cli(
      'predictions', 'no-such-run', '--store', store, '--output', output
    )
    refused(proc, f'{output}: cannot write the predictions here', words)
  assert sorted(os.listdir(tmp_path)) == ['fifo.csv', 'metadata.sqlite']


@pytest.mark.e2e
def test_the_eval_split_with_the_models_outputs_gives_the_evaluators_metrics(
  base, cold, tmp_path
):
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  summary = cold[1]
  output = str(tmp_path / 'eval.csv')
  proc = cli(
    'predictions',
    summary['run_id'],
    '--store',
    os.path.join(base, 'metadata.sqlite'),
    '--output',
    output,
  )
  assert proc.returncode == 0, proc.stderr
  table = pd.read_csv(output)
  expected = summary['metrics']
  assert f'wrote {output} ({len(table)} rows' in proc.stdout
  assert len(table) == expected['example_count'] > 0
  # The original columns, the label among them, then the model's outputs.
  with open(
    os.path.join(REPO, 'data', 'breast_cancer', 'breast_cancer.csv')
  ) as f:
    header = f.readline().strip().split(',')
  assert list(table.columns) == sorted(header) + [
    'predicted_class_id',
    'predicted_probability',
  ]
  accuracy = (table['predicted_class_id'] == table['diagnosis']).mean()
  assert accuracy == pytest.approx(expected['accuracy'], abs=1e-6)
  # TFMA's AUC sums a fixed grid of thresholds; the exact one differs a bit.
  auc = metrics.roc_auc_score(
    table['diagnosis'], table['predicted_probability']
  )
  assert auc == pytest.approx(expected['auc'], abs=2e-3)


def readme_example(row, kinds):
  """A CSV row as the bytes ExampleGen hashes: the README's recipe."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  example = tf.train.Example()
  for name in sorted(row):
    feature = example.features.feature[name]
    values = {
      'INT': feature.int64_list,
      'FLOAT': feature.float_list,
      'STRING': feature.bytes_list,
    }[kinds[name]]
    values.SetInParent()  # an empty cell: the feature, with no value
    text = row[name]
    if text != '':
      values.value.append(
        {'INT': int, 'FLOAT': float, 'STRING': str.encode}[kinds[name]](text)
      )
  return example.SerializeToString(deterministic=True)


@pytest.mark.e2e
def test_the_split_is_the_hash_of_each_rows_bytes(base, cold):
  import csv  # pylint: disable=g-import-not-at-top

  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from pipeline.experiments import splits  # pylint: disable=g-import-not-at-top

  # The cold run's own examples: other tests add runs on other data to
  # this pipeline root, so its newest ExampleGen output may not be them.
  record = lineage.run_record(
    lineage.open_store(os.path.join(base, 'metadata.sqlite')), cold[1]['run_id']
  )
  examples = record.examples()[0].uri
  buckets = {'train': 4, 'eval': 1}  # the default spec's data.split
  stored = {
    name: set(splits.records(splits.split_folder(examples, name)))
    for name in buckets
  }
  for name, records in stored.items():
    assert {splits.hash_split(r, buckets) for r in records} == {name}
  # Every row of the CSV, encoded as the README says, is in the split its
  # hash names: the split can be made again outside the pipeline.
  features = tf.train.Example.FromString(next(iter(stored['eval']))).features
  kinds = {
    name: {'int64_list': 'INT', 'float_list': 'FLOAT', 'bytes_list': 'STRING'}[
      f.WhichOneof('kind')
    ]
    for name, f in features.feature.items()
  }
  with open(
    os.path.join(REPO, 'data', 'breast_cancer', 'breast_cancer.csv'), newline=''
  ) as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    example = readme_example(row, kinds)
    assert example in stored[splits.hash_split(example, buckets)]
  assert len(rows) == sum(len(r) for r in stored.values())


@pytest.mark.e2e
def test_a_run_whose_files_are_gone_is_one_line(base, cold, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  import sqlite3  # pylint: disable=g-import-not-at-top

  store = str(tmp_path / 'moved.sqlite')
  shutil.copy(os.path.join(base, 'metadata.sqlite'), store)
  # The store of a pipeline root that was removed since (or is elsewhere).
  with sqlite3.connect(store) as db:
    db.execute(
      'UPDATE Artifact SET uri = replace(uri, ?, ?)',
      (os.path.join(base, 'root'), str(tmp_path / 'gone')),
    )
  output = str(tmp_path / 'eval.csv')
  proc = cli(
    'predictions', cold[1]['run_id'], '--store', store, '--output', output
  )
  refused(proc, str(tmp_path / 'gone'), 'gone from its pipeline root')
  assert not os.path.exists(output)
  assert sorted(os.listdir(tmp_path)) == ['moved.sqlite']
