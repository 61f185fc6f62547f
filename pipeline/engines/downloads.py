"""The engines' parts that are downloaded once and cached: Beam's job-server
jars from Maven Central, and distributions installed from PyPI into folders
of their own (`pip install --no-deps --target`), never into the project's
environment (apache-flink 1.18 pins apache-beam < 2.49).

`python -m pipeline engine fetch` (and `make engines`) gets them; the
engines only look them up (`cached_jar`, `cached_dist`), so a run never
downloads. Where: $PIPELINE_ENGINES_HOME, else ~/.cache/tfx-pipelines/
engines.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from typing import Optional

MAVEN_CENTRAL = 'https://repo.maven.apache.org/maven2'
BEAM_VERSION = '2.59.0'


def home() -> str:
  return os.path.abspath(
    os.path.expanduser(
      os.environ.get('PIPELINE_ENGINES_HOME', '~/.cache/tfx-pipelines/engines')
    )
  )


def jar_path(artifact: str, version: str = BEAM_VERSION) -> str:
  return os.path.join(home(), 'jars', f'{artifact}-{version}.jar')


def cached_jar(artifact: str, version: str = BEAM_VERSION) -> Optional[str]:
  path = jar_path(artifact, version)
  return path if os.path.isfile(path) else None


def fetch_jar(
  group: str, artifact: str, version: str = BEAM_VERSION, progress=print
) -> str:
  """Downloads a Maven Central jar into the cache (checked against its
  published SHA-1) unless it is there; its path."""
  path = jar_path(artifact, version)
  if os.path.isfile(path):
    return path
  url = (
    f'{MAVEN_CENTRAL}/{group.replace(".", "/")}/{artifact}/{version}/'
    f'{artifact}-{version}.jar'
  )
  progress(f'downloading {url}')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with urllib.request.urlopen(url + '.sha1', timeout=60) as response:
    expected = response.read().decode().split()[0].strip()
  digest = hashlib.sha1()  # noqa: S324 - Maven Central publishes SHA-1
  partial = path + '.part'
  with (
    urllib.request.urlopen(url, timeout=60) as response,
    open(partial, 'wb') as out,
  ):
    while True:
      chunk = response.read(1 << 20)
      if not chunk:
        break
      digest.update(chunk)
      out.write(chunk)
  if digest.hexdigest() != expected:
    os.remove(partial)
    raise OSError(
      f'{url}: SHA-1 {digest.hexdigest()} is not the published '
      f'{expected}; try again'
    )
  os.replace(partial, path)
  return path


def dist_path(name: str) -> str:
  return os.path.join(home(), 'dists', name)


def cached_dist(name: str) -> Optional[str]:
  """The folder a distribution was installed into, when it is complete."""
  path = dist_path(name)
  return path if os.path.isfile(os.path.join(path, '.complete')) else None


def fetch_dist(name: str, *requirements: str, progress=print) -> str:
  """Installs `requirements` from PyPI with no dependencies into the cache
  folder `name` unless it is there; its path. Installed into a temporary
  folder first, so an interrupted install leaves nothing half-made."""
  path = dist_path(name)
  if cached_dist(name):
    return path
  progress(f'installing {" ".join(requirements)} into {path}')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  staging = tempfile.mkdtemp(prefix=name + '.', dir=os.path.dirname(path))
  try:
    subprocess.run(
      [
        sys.executable,
        '-m',
        'uv',
        'pip',
        'install',
        '--quiet',
        '--python',
        sys.executable,
        '--no-deps',
        '--target',
        staging,
        *requirements,
      ],
      check=True,
    )
    open(os.path.join(staging, '.complete'), 'w').close()
    shutil.rmtree(path, ignore_errors=True)
    os.replace(staging, path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return path
