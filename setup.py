"""Installs the project's packages so components find module code by import
path ('modules.train.run_fn') locally and inside the pipeline image.

Dependencies are pinned in requirements.lock (installed first, see Makefile);
install_requires names only the top-level ones, unpinned.
"""

import setuptools

setuptools.setup(
  name='tfx-declarative-pipelines',
  version='0.1.0',
  description='Declarative TFX pipelines: one YAML spec, local and Kubeflow '
  'runners, scratch training and fine-tuning.',
  python_requires='==3.10.*',
  packages=setuptools.find_packages(
    include=[
      'pipeline',
      'pipeline.*',
      'components',
      'components.*',
      'modules',
      'modules.*',
      'kubeflow',
      'kubeflow.*',
    ]
  ),
  package_data={
    'pipeline': ['specs/*.yaml'],
    'pipeline.report': ['templates/*'],
  },
  install_requires=[
    'tfx==1.16.0',
    'tf-keras',
    'keras-tuner==1.3.5',
    'dill',
    'scikit-learn',
    'pyyaml',
    'pydantic>=2,<3',
    'tornado',
    'jinja2',
    'rich',
    'matplotlib',
  ],
  entry_points={'console_scripts': ['tfx-pipeline=pipeline.cli:main']},
)
