"""Hostile input refused before anything runs (issue 26: items 5, 7, 8, 9
and 18): special files and editor files in the data, a second data set in
the data folder, a label value out of the classes, column names that cannot
name TensorFlow ops, a module file reading step counts the spec leaves
unset, and values past the spec's maxima. Each is one stderr line under
300 characters naming the culprit, exit 2, and nothing written.

`run` is refused in pre-flight (or at load), so these run no pipeline, but
one (`e2e`): an excluded column whose name no op could take runs through.
"""

import os

import pytest

from modules import features as features_lib
from modules import search_plan
from modules.config import SearchSpace, TunerSpec
from pipeline.definition import spec as spec_lib
from tests.conftest import DATA_CSV, DEFAULT_SPEC, REPO, base_sets, cli
from tests.unit.runners.test_faults import (
  _csv,
  _rows,
  _set,
  _spec_file,
  _spec_raw,
  nothing_written,
  refused,
)

PENGUIN_SPEC = os.path.join(REPO, 'pipeline', 'specs', 'penguin.yaml')
# A refusal is quick; a hang (a FIFO read) must not stall the suite.
QUICK = 120


def _run_with(tmp_path, mutate):
  """`run` on the default spec (outputs under tmp_path/out) changed by
  `mutate`."""
  return cli(
    'run', _spec_file(tmp_path, mutate(_spec_raw(tmp_path))), timeout=QUICK
  )


def _data_folder(tmp_path):
  """A data folder holding the default CSV as data.csv."""
  folder = tmp_path / 'data'
  folder.mkdir()
  with open(DATA_CSV, 'rb') as f:
    (folder / 'data.csv').write_bytes(f.read())
  return folder


# --- item 8: special files, refused unread -----------------------------------


def test_a_fifo_in_the_data_folder_is_refused_without_waiting(tmp_path):
  folder = _data_folder(tmp_path)
  os.mkfifo(folder / 'incoming')
  refused(
    _run_with(tmp_path, _set('data', 'csv', value=str(folder))),
    f'{folder / "incoming"}: a named pipe (FIFO) in the data folder',
    'move it out of the folder',
  )
  nothing_written(tmp_path)


def test_a_device_as_the_data_is_refused_without_reading_it(tmp_path):
  refused(
    _run_with(tmp_path, _set('data', 'csv', value='/dev/zero')),
    '/dev/zero: a character device, not a data file (data.csv)',
  )
  nothing_written(tmp_path)


def test_a_device_as_the_spec_schema_or_module_file_is_refused(tmp_path):
  refused(
    cli('validate', '/dev/zero', timeout=QUICK),
    '/dev/zero: a character device, not a spec file',
  )
  os.mkfifo(tmp_path / 'fifo.yaml')
  refused(
    cli('validate', str(tmp_path / 'fifo.yaml'), timeout=QUICK),
    'fifo.yaml: a named pipe (FIFO), not a spec file',
  )
  refused(
    _run_with(tmp_path, _set('schema', value='/dev/zero')),
    '/dev/zero: a character device, not a schema file',
  )
  os.mkfifo(tmp_path / 'module.py')
  refused(
    _run_with(tmp_path, _set('module_file', value=str(tmp_path / 'module.py'))),
    'module_file:',
    'module.py: a named pipe (FIFO), not a Python file',
  )
  nothing_written(tmp_path)


def test_a_broken_link_in_the_data_folder_is_named(tmp_path):
  folder = _data_folder(tmp_path)
  os.symlink(tmp_path / 'gone.csv', folder / 'more.csv')
  refused(
    _run_with(tmp_path, _set('data', 'csv', value=str(folder))),
    f'{folder / "more.csv"}: a broken symbolic link',
  )
  nothing_written(tmp_path)


# --- item 9: files that are not the data, a label out of the classes ---------


@pytest.mark.parametrize(
  'name',
  [
    '.~lock.data.csv#',  # LibreOffice
    '.#data.csv',  # Emacs's lock: a link to nowhere
    'data.csv~',  # a backup
    '#data.csv#',  # Emacs's auto-save
    '.data.csv.swp',  # vim
  ],
)
def test_an_editor_s_file_in_the_data_folder_is_named(tmp_path, name):
  folder = _data_folder(tmp_path)
  if name == '.#data.csv':
    os.symlink('user@host.1234:1700000000', folder / name)
  else:
    (folder / name).write_text('user,host\n')
  line = refused(
    _run_with(tmp_path, _set('data', 'csv', value=str(folder))),
    f"{folder}: {name!r} is an editor's lock or backup file",
    'move this one out of the folder',
  )
  assert 'Traceback' not in line
  nothing_written(tmp_path)


def test_another_data_set_in_the_data_folder_is_named_in_one_short_line(
  tmp_path,
):
  folder = _data_folder(tmp_path)
  with open(os.path.join(REPO, 'data', 'cars', 'cars.csv'), 'rb') as f:
    (folder / 'zz_cars.csv').write_bytes(f.read())
  raw = _spec_raw(tmp_path)
  raw['data']['csv'] = str(folder)
  del raw['schema']  # without a schema, the first file's header rules
  line = refused(
    cli('run', _spec_file(tmp_path, raw), timeout=QUICK),
    f'{folder / "zz_cars.csv"}: not the columns of data.csv',
    'and 28 more',
    'move other files out',
  )
  assert len(line) < 300
  nothing_written(tmp_path)


def test_another_data_set_against_the_schema_is_one_short_line(tmp_path):
  folder = _data_folder(tmp_path)
  with open(os.path.join(REPO, 'data', 'cars', 'cars.csv'), 'rb') as f:
    (folder / 'a_cars.csv').write_bytes(f.read())
  refused(
    _run_with(tmp_path, _set('data', 'csv', value=str(folder))),
    f'{folder / "a_cars.csv"}: header does not match the schema',
    'and 28 more',
    'and 6 more',
  )
  nothing_written(tmp_path)


def _label(rows, line, value):
  rows[line - 1][rows[0].index('diagnosis')] = value
  return rows


def test_a_label_value_out_of_the_classes_is_blamed_on_its_row(tmp_path):
  data = _csv(tmp_path, _label(_rows(), 6, '7'))
  line = refused(
    _run_with(tmp_path, _set('data', 'csv', value=data)),
    f'{data}: line 6, column diagnosis (features.label): class 7',
    'no row holds class 2..6',
    'features.num_classes',
  )
  assert 'evaluation.metrics' not in line
  nothing_written(tmp_path)


def test_a_label_out_of_the_declared_classes_is_blamed_on_its_row(tmp_path):
  data = _csv(tmp_path, _label(_label(_rows(), 9, '2'), 4, '3'))
  raw = _set('data', 'csv', value=data)(_spec_raw(tmp_path))
  raw['features']['num_classes'] = 2
  refused(
    cli('run', _spec_file(tmp_path, raw), timeout=QUICK),
    f'{data}: line 9, column diagnosis (features.label): class 2 is out '
    'of range for features.num_classes 2',
  )
  nothing_written(tmp_path)


# --- item 7: column names TensorFlow cannot take -------------------------------


def _renamed(tmp_path, old, new):
  rows = _rows()
  rows[0][rows[0].index(old)] = new
  return _csv(tmp_path, rows)


@pytest.mark.parametrize(
  'name,instead',
  [
    ('mean radius', 'mean_radius'),  # scikit-learn's own name
    ('<b>radius</b>', 'b_radius_b'),
    ('_radius', 'radius'),
  ],
)
def test_a_column_name_tensorflow_cannot_take_is_refused_before_the_run(
  tmp_path, name, instead
):
  data = _renamed(tmp_path, 'mean_radius', name)
  raw = _set('data', 'csv', value=data)(_spec_raw(tmp_path))
  del raw['schema']
  raw['features'] = {'label': 'diagnosis'}  # every other column a feature
  refused(
    cli('run', _spec_file(tmp_path, raw), timeout=QUICK),
    f'{data}: column {name!r} (features.numeric)',
    f'rename it (e.g. {instead})',
    'features.exclude',
  )
  nothing_written(tmp_path)


def test_an_excluded_column_may_have_any_name(tmp_path):
  data = _renamed(tmp_path, 'mean_radius', 'mean radius')
  proc = cli(
    'validate',
    DEFAULT_SPEC,
    '--set',
    f'data.csv={data}',
    '--set',
    'schema=null',
    '--set',
    'features.numeric=[]',
    '--set',
    'features.exclude=[mean radius]',
    timeout=QUICK,
  )
  assert proc.returncode == 0, proc.stderr
  assert '29 features' in proc.stdout


@pytest.mark.e2e
def test_an_excluded_column_with_markup_in_its_name_runs_end_to_end(tmp_path):
  """Why pre-flight lets excluded columns keep any name: none becomes an op
  or input name (ExampleGen, statistics, Transform, Tuner, Trainer and
  Evaluator run on it)."""
  name = 'Patient <ID> #'
  data = _renamed(tmp_path, 'mean_radius', name)
  proc = cli(
    'run',
    *base_sets(str(tmp_path / 'out')),
    '--set',
    f'data.csv={data}',
    '--set',
    'schema=null',
    '--set',
    'features.numeric=[]',
    '--set',
    f'features.exclude=["{name}"]',
    '--set',
    'tuner.max_trials=2',
    '--set',
    'tuner.max_epochs=2',
    '--set',
    'training.epochs=5',
    timeout=900,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'Evaluator' in proc.stdout and 'metrics (eval split)' in proc.stdout


def test_the_label_s_name_is_checked_too(tmp_path):
  data = _renamed(tmp_path, 'diagnosis', 'is malignant')
  raw = _set('data', 'csv', value=data)(_spec_raw(tmp_path))
  del raw['schema']
  raw['features'] = {'label': 'is malignant'}
  line = refused(
    cli('run', _spec_file(tmp_path, raw), timeout=QUICK),
    "column 'is malignant' (features.label)",
    'is_malignant',
  )
  assert 'features.exclude' not in line
  nothing_written(tmp_path)


def test_names_tensorflow_takes():
  for name in ('mean_radius', 'a.b-c', '9lives', 'X'):
    assert features_lib.is_usable_name(name), name
  for name in ('mean radius', '_id', '-x', 'a/b', '<b>', '', 'é'):
    assert not features_lib.is_usable_name(name), name
    assert features_lib.is_usable_name(features_lib.usable_name(name)), name


# --- item 5: a module file's step counts -------------------------------------


@pytest.mark.parametrize('key', ['train_steps', 'eval_steps'])
def test_tfx_s_penguin_module_without_its_steps_is_refused(tmp_path, key):
  out = tmp_path / 'out'
  refused(
    cli(
      'run',
      PENGUIN_SPEC,
      *base_sets(str(out)),
      '--set',
      f'training.{key}=null',
      timeout=QUICK,
    ),
    f'training.{key}: module_file penguin_utils_keras.py reads '
    f'fn_args.{key}, which is None unless set',
  )
  nothing_written(tmp_path)


def _module(tmp_path, body):
  path = tmp_path / 'module.py'
  path.write_text('def run_fn(fn_args):\n' + body)
  return spec_lib.read_module(str(path), 'spec.yaml')


def test_a_module_s_own_fallback_for_steps_is_respected(tmp_path):
  assert _module(
    tmp_path, '  fit(fn_args.train_steps, fn_args.eval_steps)\n'
  ).steps == ('train_steps', 'eval_steps')
  assert _module(tmp_path, '  fit(fn_args.train_steps or 100)\n').steps == ()
  assert (
    _module(tmp_path, '  if fn_args.eval_steps is None:\n    pass\n').steps
    == ()
  )
  assert _module(tmp_path, '  pass\n') == (('run_fn',), ())


# --- item 18: maxima ----------------------------------------------------------


@pytest.mark.parametrize(
  'key,value,culprit',
  [
    (
      'training.epochs',
      10**20,
      'training.epochs: at most 10000 (got a 21-digit number)',
    ),
    ('tuner.max_epochs', 10**6, 'tuner.max_epochs: at most 10000'),
    ('tuner.max_trials', 10**6, 'tuner.max_trials: at most 10000'),
    (
      'model.search_space.units',
      {'min': 16, 'max': 10**9},
      'model.search_space.units: at most 65536 (got 1000000000)',
    ),
    (
      'model.search_space.batch_size',
      [32, 10**7],
      'model.search_space.batch_size: at most 65536',
    ),
    (
      'model.search_space.num_layers',
      {'min': 1, 'max': 1000},
      'model.search_space.num_layers: at most 64',
    ),
  ],
)
def test_values_past_the_maxima_are_refused_naming_the_key(
  tmp_path, key, value, culprit
):
  refused(_run_with(tmp_path, _set(*key.split('.'), value=value)), culprit)
  nothing_written(tmp_path)


def test_the_maxima_hold_every_bundled_spec():
  for name in sorted(os.listdir(os.path.dirname(PENGUIN_SPEC))):
    spec_lib.load_spec(os.path.join(os.path.dirname(PENGUIN_SPEC), name))


def test_hyperband_advice_below_its_factor_does_not_contradict_itself():
  """max_epochs 2 under factor 3: one round of 2 trials is the whole
  iteration, so the note must not say max_trials 2 ends it early."""
  note = search_plan.plan(
    TunerSpec(max_trials=2, max_epochs=2), SearchSpace()
  ).note
  assert note == (
    'tuner.max_epochs 2 is below tuner.factor 3, so Hyperband runs one '
    'round: 2 trials of 2 epochs, none promoted; raise max_epochs to at '
    'least factor, or use tuner.algorithm: random for 2 trials of up to 2 '
    'epochs'
  )
  assert (
    'within its first round'
    in search_plan.plan(
      TunerSpec(max_trials=2, max_epochs=6), SearchSpace()
    ).note
  )


def test_schema_output_on_a_device_is_refused_before_the_pipeline_runs(
  tmp_path,
):
  spec = _spec_file(tmp_path)
  before = os.lstat('/dev/full')
  line = refused(
    cli('schema', spec, '--output', '/dev/full', timeout=QUICK),
    '/dev/full: cannot write the schema here',
    'a character device',
  )
  assert 'CsvExampleGen' not in line
  after = os.lstat('/dev/full')
  assert (after.st_mode, after.st_rdev) == (before.st_mode, before.st_rdev)
  nothing_written(tmp_path)
