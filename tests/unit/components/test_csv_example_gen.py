"""The vectorised CsvExampleGen (components/csv_example_gen.py) against the
per-cell rules of components/csv_format.py, as the ExampleGen applied them
cell by cell before, and against TFX's stock CsvExampleGen.

The rule tests call the executor's DoFns as plain Python (no Beam): `_new`
plans the units, infers the kinds and converts, as the Beam transform
does. `_reference` is the per-cell path: the csv module, csv_format's
infer_kinds and value_of, one tf.train.Example per row. Both are compared
as the sorted bytes of SerializeToString(deterministic=True).

The tests that run the executor, a Beam pipeline each, are marked e2e.
"""

import glob
import gzip
import os
import random

import pytest
import tensorflow as tf
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import csv_example_gen as ceg
from components import csv_format
from tests.conftest import DATA_CSV


def _write(folder, files):
  os.makedirs(folder, exist_ok=True)
  for name, data in files.items():
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(data.encode('utf-8') if isinstance(data, str) else data)
  return str(folder)


def _paths(folder):
  return sorted(glob.glob(os.path.join(folder, '*.csv')))


def _reference(folder, fmt):
  """The rows as the per-cell path wrote them (before the vectorised one)."""
  columns, rows = None, []
  for path in _paths(folder):
    with open(path, 'rb') as f:
      records = list(csv_format.rows(csv_format.read_text(f.read(), path)))
    header = [name.strip() for name in records[0]]
    columns = columns or header
    rows += [[r[header.index(c)] for c in columns] for r in records[1:]]
  kinds = {
    **csv_format.infer_kinds(columns, rows, fmt.null_values),
    **{c: k for c, k in fmt.columns.items() if c in columns},
  }
  found = []
  for row in rows:
    features = {}
    for name, cell in zip(columns, row, strict=True):
      value = csv_format.value_of(cell, kinds[name], fmt.null_values)
      values = [] if value is None else [value]
      if kinds[name] == csv_format.INT:
        feature = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
      elif kinds[name] == csv_format.FLOAT:
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=values))
      else:
        feature = tf.train.Feature(
          bytes_list=tf.train.BytesList(
            value=[v.encode('utf-8') for v in values]
          )
        )
      features[name] = feature
    found.append(
      tf.train.Example(
        features=tf.train.Features(feature=features)
      ).SerializeToString(deterministic=True)
    )
  return sorted(found)


def _units(folder, columns):
  plan = ceg._PlanUnits(columns)  # pylint: disable=protected-access
  return [
    u for i, path in enumerate(_paths(folder)) for u in plan.process((i, path))
  ]


def _new(folder, fmt):
  """The rows as the executor's DoFns write them (no Beam)."""
  # pylint: disable=protected-access
  columns = ceg._header(_paths(folder)[0])
  units = _units(folder, columns)
  declared = {c: k for c, k in fmt.columns.items() if c in columns}
  undeclared = [c for c in columns if c not in declared]
  merge = ceg._MergeKinds(undeclared)
  found = [k for u in units for k in ceg._UnitKinds(undeclared, fmt).process(u)]
  kinds = {**merge.extract_output(merge.merge_accumulators(found)), **declared}
  convert = ceg._UnitToRecords(columns, fmt, ceg._OneSplit(0))
  return sorted(
    r for u in units for _, batch in convert.process(u, kinds) for r in batch
  )


@pytest.fixture
def small_units(monkeypatch):
  """Units of a few dozen bytes and slices of 3 rows, so that a small file
  is cut into several units, each converted in several slices."""
  monkeypatch.setattr(ceg, 'UNIT_BYTES', 40)
  monkeypatch.setattr(ceg, 'SLICE_ROWS', 3)


# Each case: files (name -> text), the format.
HARD_CASES = {
  'quoted comma and line break, BOM, CRLF, null tokens, whole floats': (
    {
      'a.csv': '\ufeffid,weight,note,label\r\n1,70,"two\r\nlines",a\r\n'
      '2,NA,,b\r\n3,82,"x, y",a\r\n'
    },
    csv_format.CsvFormat(null_values=('NA',), columns={'weight': 'FLOAT'}),
  ),
  'columns in another order in the second file': (
    {
      'a.csv': 'id,weight,label\n1,70,a\n2,,b\n',
      'b.csv': 'label,id,weight\nb,4,65.5\n',
    },
    csv_format.CsvFormat(),
  ),
  'spaces around numbers, 3.0 in INT, NaN and inf, Python-only numbers': (
    {
      'a.csv': 'i,f,g,s\n 1 ,\t2.5 ,1,x\n3.0,nan,+5, \t \n'
      '+7,inf,1_000,NA\n-0,-1e5,-3,\n\n\n00, .5,7,"q,r"\n'
    },
    csv_format.CsvFormat(null_values=('NA',), columns={'i': 'INT'}),
  ),
  'non-ASCII spaces and digits, and \\x1c, which str.strip() strips': (
    {
      'a.csv': 'a,b,c\n\u00a01\u00a0,\u3000,x\n\u0663,y,\u00e9\n'
      '\x1c2\x1c,NA,\x1c\n'
    },
    csv_format.CsvFormat(null_values=('NA',)),
  ),
  'a column with no present cell is STRING; floats past float32': (
    {'a.csv': 'a,b\n,1e39\nNA,3.4028235677973366e+38\n,-1e-50\n'},
    csv_format.CsvFormat(null_values=('NA',)),
  ),
  'quoted empty cells, a lone CR line end, a last line without one': (
    {'a.csv': 'a,b\n"1",""\r"",x\n7,"8"'},
    csv_format.CsvFormat(),
  ),
  'header only': ({'a.csv': 'a,b\n'}, csv_format.CsvFormat()),
}


@pytest.mark.parametrize('files,fmt', HARD_CASES.values(), ids=list(HARD_CASES))
def test_hard_cases_are_read_as_the_per_cell_rules_read_them(
  tmp_path, files, fmt
):
  folder = _write(tmp_path, files)
  assert _new(folder, fmt) == _reference(folder, fmt)


def _random_csv(rng, rows):
  cells = [
    '1',
    '-7',
    '+5',
    '3.0',
    '2.5',
    '-1e5',
    '.5',
    '5.',
    'nan',
    'inf',
    '1_000',
    '',
    ' ',
    'NA',
    ' NA ',
    'abc',
    '\u00e9',
    ' 42 ',
    '0x10',
    '1e400',
    '00',
    '\u0663',
  ]
  makers = [
    lambda: str(rng.randint(-300, 300)),
    lambda: repr(rng.uniform(-1e3, 1e3)),
    lambda: rng.choice(cells),
    lambda: rng.choice(['x', 'y z', '']),
  ]
  columns = [rng.choice(makers) for _ in range(4)]
  lines = ['c0,c1,c2,c3']
  for _ in range(rows):
    lines.append(
      ','.join(
        make() if rng.random() > 0.1 else rng.choice(['', 'NA'])
        for make in columns
      )
    )
    if rng.random() < 0.05:
      lines.append('')
  return rng.choice(['\n', '\r\n']).join(lines) + '\n'


@pytest.mark.parametrize('seed', range(6))
def test_random_files_cut_into_units_read_as_the_per_cell_rules(
  tmp_path, small_units, seed
):
  del small_units
  rng = random.Random(seed)
  folder = _write(tmp_path, {'a.csv': _random_csv(rng, 40)})
  fmt = csv_format.CsvFormat(
    null_values=('NA',), columns={} if seed % 2 else {'c0': 'FLOAT'}
  )
  assert len(_units(folder, ['c0', 'c1', 'c2', 'c3'])) > 3
  try:
    expected = _reference(folder, fmt)
  except csv_format.CellError as e:  # the per-cell path names no column
    with pytest.raises(ValueError, match=str(e)):
      _new(folder, fmt)
    return
  assert _new(folder, fmt) == expected


def test_a_file_with_quotes_is_one_unit_and_others_are_cut(
  tmp_path, small_units
):
  del small_units
  rows = ''.join(f'{i},{i * 2}\n' for i in range(30))
  folder = _write(
    tmp_path, {'a.csv': 'a,b\n' + rows, 'b.csv': 'a,b\n"1",2\n' + rows}
  )
  a, b = _paths(folder)
  units = _units(folder, ['a', 'b'])
  assert [u.path for u in units].count(b) == 1
  cut = [u for u in units if u.path == a]
  assert len(cut) > 3 and cut[0].start == 0 and cut[-1].end is None
  # Each unit starts on a line: the cuts together read every line once.
  assert [u.end for u in cut[:-1]] == [u.start for u in cut[1:]]
  assert _new(folder, csv_format.CsvFormat()) == _reference(
    folder, csv_format.CsvFormat()
  )


@pytest.mark.parametrize(
  'files,fmt,message',
  [
    (
      {'a.csv': 'a,b\n1,2\n\n3,4\n5\n'},
      csv_format.CsvFormat(),
      '{a}: record 4: 1 fields, expected 2',
    ),
    (
      {'a.csv': 'a,b\n1,2\n3,4,5\n'},
      csv_format.CsvFormat(),
      '{a}: record 3: 3 fields, expected 2',
    ),
    (
      {'a.csv': 'a,b\n1,2\n3,abc\n'},
      csv_format.CsvFormat(columns={'b': 'FLOAT'}),
      "column b: 'abc' is not a number",
    ),
    (
      {'a.csv': 'a,b\n1,2.5\n'},
      csv_format.CsvFormat(columns={'b': 'INT'}),
      "column b: '2.5' is not an integer",
    ),
    (
      {'a.csv': 'a,b\n1,0x10\n'},
      csv_format.CsvFormat(columns={'b': 'INT'}),
      "column b: '0x10' is not an integer",
    ),
    (
      {'a.csv': 'a,b\n1,2\n', 'b.csv': 'a,c\n1,2\n'},
      csv_format.CsvFormat(),
      '{b}: header lacks column(s) b',
    ),
    (
      {'a.csv': b'a,b\n1,2\n3,\xe9\n'},
      csv_format.CsvFormat(),
      '{a}: line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8',
    ),
    (
      {'a.csv': b'\x00\x01a,b\n'},
      csv_format.CsvFormat(),
      '{a}: a binary file, not CSV text',
    ),
    (
      {'a.csv': ''},
      csv_format.CsvFormat(),
      '{a}: empty file; expected a header row',
    ),
  ],
  ids=[
    'short row',
    'long row',
    'text in FLOAT',
    '2.5 in INT',
    'hex in INT',
    'header lacks a column',
    'not UTF-8',
    'binary',
    'empty',
  ],
)
def test_errors_are_one_line_naming_file_and_record(
  tmp_path, files, fmt, message
):
  folder = _write(tmp_path, files)
  message = message.format(
    a=os.path.join(folder, 'a.csv'), b=os.path.join(folder, 'b.csv')
  )
  with pytest.raises((ValueError, UnicodeError)) as error:
    _new(folder, fmt)
  assert str(error.value) == message


def test_a_ragged_row_in_a_later_unit_names_its_record_in_the_file(
  tmp_path, small_units
):
  del small_units
  lines = ['a,b'] + [f'{i},{i}' for i in range(40)]
  lines[33] = '7'  # record 34: the header is record 1
  lines.insert(10, '')  # blank lines are no records
  folder = _write(tmp_path, {'a.csv': '\n'.join(lines) + '\n'})
  assert len(_units(folder, ['a', 'b'])) > 3
  with pytest.raises(ValueError) as error:
    _new(folder, csv_format.CsvFormat())
  assert str(error.value) == (
    f'{os.path.join(folder, "a.csv")}: record 34: 1 fields, expected 2'
  )


def _encoder_columns(rows):
  """Seeded columns with the edge cases of each type: where a value is
  present, varint boundaries, floats, and empty, non-ASCII and long text."""
  rng = random.Random(0)
  present = [rng.random() > 0.2 for _ in range(rows)]
  ints = [
    rng.choice([0, 1, 127, 128, -1, 2**62, -(2**63), 300]) for _ in range(rows)
  ]
  floats = [rng.uniform(-1e6, 1e6) for _ in range(rows)]
  texts = [
    rng.choice(['', 'a', '\u00e9' * 70, 'x' * 20000]) for _ in range(rows)
  ]
  return present, ints, floats, texts


def _encoder_features(present, ints, floats, texts):
  """The columns as the encoder's features, with and without gaps."""
  # pylint: disable=protected-access
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pyarrow as pa  # pylint: disable=g-import-not-at-top

  everywhere = np.ones(len(present), bool)
  return {
    'int': ceg._Feature(csv_format.INT, np.array(ints), np.array(present)),
    'int_all': ceg._Feature(csv_format.INT, np.array(ints) % 100, everywhere),
    'float': ceg._Feature(
      csv_format.FLOAT, np.array(floats, np.float32), everywhere
    ),
    'float_gaps': ceg._Feature(
      csv_format.FLOAT, np.array(floats, np.float32), np.array(present)
    ),
    'k' * 200: ceg._Feature(
      ceg._BYTES,
      pa.array([t.encode() for t in texts], pa.large_binary()),
      np.array(present),
    ),
  }


def _deterministic_example(kept, an_int, a_float, text):
  """One row of `_encoder_features` as TensorFlow serializes it."""
  return tf.train.Example(
    features=tf.train.Features(
      feature={
        'int': tf.train.Feature(
          int64_list=tf.train.Int64List(value=[an_int] if kept else [])
        ),
        'int_all': tf.train.Feature(
          int64_list=tf.train.Int64List(value=[an_int % 100])
        ),
        'float': tf.train.Feature(
          float_list=tf.train.FloatList(value=[a_float])
        ),
        'float_gaps': tf.train.Feature(
          float_list=tf.train.FloatList(value=[a_float] if kept else [])
        ),
        'k' * 200: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[text.encode()] if kept else [])
        ),
      }
    )
  ).SerializeToString(deterministic=True)


def test_the_encoder_writes_the_deterministic_serialization():
  # pylint: disable=protected-access
  columns = _encoder_columns(300)
  features = _encoder_features(*columns)
  expected = [
    _deterministic_example(*row) for row in zip(*columns, strict=True)
  ]
  assert ceg._encode(features) == expected
  numbers = {k: v for k, v in features.items() if k in ('float', 'int_all')}
  assert ceg._encode(numbers) == [
    tf.train.Example.FromString(e).SerializeToString(deterministic=True)
    for e in ceg._encode(numbers)
  ]


def test_the_hash_split_is_tfx_s_partition():
  # 7 buckets: modulo 5 (256 = 1), a digest read backwards would pass.
  output_config = example_gen_pb2.Output(
    split_config=(
      example_gen_pb2.SplitConfig(
        splits=[
          example_gen_pb2.SplitConfig.Split(name='train', hash_buckets=4),
          example_gen_pb2.SplitConfig.Split(name='eval', hash_buckets=3),
        ]
      )
    )
  )
  examples = [
    tf.train.Example(
      features=tf.train.Features(
        feature={
          'x': tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))
        }
      )
    )
    for i in range(500)
  ]
  records = [e.SerializeToString(deterministic=True) for e in examples]
  found = ceg._HashSplit(output_config)(records, None)  # pylint: disable=protected-access
  assert found.tolist() == [
    base_example_gen_executor._PartitionFn(  # pylint: disable=protected-access
      e, 2, [4, 7], output_config.split_config
    )
    for e in examples
  ]
  assert 150 < found.sum() < 280  # about 3/7 to eval


# --- The executor, a Beam pipeline each ------------------------------------


def _output_config():
  return example_gen_pb2.Output(
    split_config=example_gen_pb2.SplitConfig(
      splits=[
        example_gen_pb2.SplitConfig.Split(name='train', hash_buckets=4),
        example_gen_pb2.SplitConfig.Split(name='eval', hash_buckets=1),
      ]
    )
  )


def _properties(folder, fmt=None):
  """An ExampleGen's exec properties over folder/*.csv (with `fmt`)."""
  props = {
    standard_component_specs.INPUT_BASE_KEY: folder,
    standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
      example_gen_pb2.Input(
        splits=[
          example_gen_pb2.Input.Split(name='single_split', pattern='*.csv')
        ]
      )
    ),
    standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
      _output_config()
    ),
  }
  if fmt is not None:
    props[standard_component_specs.CUSTOM_CONFIG_KEY] = (
      proto_utils.proto_to_json(ceg.custom_config(fmt))
    )
  return props


def _run(executor, folder, out, fmt=None):
  """Runs an ExampleGen executor over folder/*.csv; split name -> (its
  files, its examples' sorted deterministic bytes)."""
  examples = standard_artifacts.Examples()
  examples.uri = str(out)
  props = _properties(folder, fmt)
  executor.Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
  assert examples.split_names == '["train", "eval"]'
  found = {}
  for name in ('train', 'eval'):
    folder = os.path.join(examples.uri, f'Split-{name}')
    files = sorted(os.listdir(folder))
    records = tf.data.TFRecordDataset(
      [os.path.join(folder, f) for f in files], 'GZIP'
    )
    found[name] = (
      files,
      sorted(
        tf.train.Example.FromString(r.numpy()).SerializeToString(
          deterministic=True
        )
        for r in records
      ),
    )
  return found


MIXED = 'id,name,score,count\n' + ''.join(
  f'{i},{"abcde"[i % 5] * (i % 3 + 1)},{i * 0.37:.3f},{i * 7 % 11}\n'
  for i in range(200)
)


@pytest.mark.e2e
@pytest.mark.parametrize('source', ['breast_cancer', 'mixed'])
def test_the_same_examples_as_tfx_s_own_csv_example_gen(tmp_path, source):
  """TFX's stock executor knows no null tokens and infers every column
  (INT when every cell is an integer, FLOAT when a number, else bytes),
  as this one does when nothing is declared: on files without gaps both
  must write the same examples to the same splits."""
  if source == 'breast_cancer':
    with open(DATA_CSV, 'rb') as f:
      folder = _write(tmp_path / 'data', {'data.csv': f.read()})
  else:
    folder = _write(tmp_path / 'data', {'data.csv': MIXED})
  stock = _run(tfx_csv.Executor(), folder, tmp_path / 'stock')
  ours = _run(ceg.Executor(), folder, tmp_path / 'ours', csv_format.CsvFormat())
  for name in ('train', 'eval'):
    assert ours[name][1] == stock[name][1], name
  assert len(ours['train'][1]) > 3 * len(ours['eval'][1]) > 0


@pytest.mark.e2e
def test_the_executor_names_its_files_as_tfx_and_leaves_no_temp_files(
  tmp_path, small_units
):
  del small_units
  folder = _write(tmp_path / 'data', {'data.csv': MIXED})
  fmt = csv_format.CsvFormat(columns={'score': 'FLOAT'})
  found = _run(ceg.Executor(), folder, tmp_path / 'out', fmt)
  units = len(_units(folder, ['id', 'name', 'score', 'count']))
  assert units > 10
  expected = _reference(folder, fmt)
  buckets = ceg._HashSplit(_output_config())(expected, None)  # pylint: disable=protected-access
  for index, name in enumerate(('train', 'eval')):
    files, examples = found[name]
    assert examples == sorted(
      e for e, b in zip(expected, buckets, strict=True) if b == index
    )
    count = len(files)
    assert files == [
      f'data_tfrecord-{i:05d}-of-{count:05d}.gz' for i in range(count)
    ]
    assert 1 < count <= units


@pytest.mark.e2e
def test_a_split_with_no_row_is_one_empty_file(tmp_path):
  folder = _write(tmp_path / 'data', {'data.csv': 'a,b\n1,2\n'})
  found = _run(ceg.Executor(), folder, tmp_path / 'out', csv_format.CsvFormat())
  empty = [name for name, (_, examples) in found.items() if not examples]
  assert len(empty) == 1
  files = found[empty[0]][0]
  assert files == ['data_tfrecord-00000-of-00001.gz']
  path = tmp_path / 'out' / f'Split-{empty[0]}' / files[0]
  with gzip.open(path) as f:
    assert f.read() == b''


@pytest.mark.e2e
def test_generate_examples_by_beam_gives_the_splits_do_writes(tmp_path):
  """TFX's hook (split name -> serialized examples) for callers that write
  themselves: the time split's rows, as Do writes them."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  folder = _write(tmp_path / 'data', {'data.csv': MIXED})
  fmt = csv_format.CsvFormat(split_by='id', eval_from='150')
  written = _run(ceg.Executor(), folder, tmp_path / 'out', fmt)
  props = _properties(folder, fmt)
  with beam.Pipeline() as pipeline:
    splits = ceg.Executor().GenerateExamplesByBeam(pipeline, props)
    for name, records in splits.items():
      _ = (
        records
        | f'All[{name}]' >> beam.combiners.ToList()
        | f'Write[{name}]'
        >> beam.Map(
          lambda found, path: open(path, 'wb').write(
            b''.join(len(r).to_bytes(4, 'big') + r for r in sorted(found))
          ),
          str(tmp_path / name),
        )
      )
  for name in ('train', 'eval'):
    data, found = (tmp_path / name).read_bytes(), []
    while data:
      size = int.from_bytes(data[:4], 'big')
      found.append(data[4 : 4 + size])
      data = data[4 + size :]
    assert found == written[name][1], name
  assert len(written['eval'][1]) == 50
