"""`compile` and `submit`: the spec compiled for Kubeflow Pipelines (or
Vertex AI Pipelines), and a compiled pipeline started on a KFP API server.

The `kubeflow` package loads inside each command; `compile`'s refusals (no
image, local paths) load no TensorFlow, TFX or Beam.
"""

from pipeline.cli.common import add_spec, add_verbose, load_spec


def add_commands(sub) -> None:
  """Adds `compile` and `submit` to `sub`, the top-level subparsers."""
  compile_ = sub.add_parser(
    'compile', help='compile the spec for Kubeflow Pipelines (KFP v2)'
  )
  add_spec(compile_)
  compile_.add_argument(
    '--image',
    help='the pipeline image (default: '
    'kubeflow.image); build it from kubeflow/Dockerfile',
  )
  compile_.add_argument(
    '--output',
    required=True,
    metavar='FILE',
    help='FILE.yaml (a PipelineSpec; .json: a Vertex PipelineJob)',
  )
  compile_.add_argument(
    '--target',
    choices=['kfp', 'vertex'],
    help='open-source KFP or Vertex AI Pipelines '
    '(default: kubeflow.target, kfp)',
  )
  compile_.add_argument(
    '--pipeline-root', metavar='URI', help='default: kubeflow.pipeline_root'
  )
  compile_.add_argument(
    '--data',
    metavar='URI',
    help='the CSV data (default: kubeflow.data, else '
    'data.csv when it is a URI)',
  )
  compile_.add_argument(
    '--push-destination',
    metavar='URI',
    help='default: kubeflow.push_destination, else '
    'push.destination when it is a URI',
  )
  compile_.set_defaults(func=cmd_compile)

  submit = sub.add_parser(
    'submit',
    help='start a run of a compiled pipeline '
    'on a Kubeflow Pipelines API server',
  )
  submit.add_argument('file', help='the compiled pipeline (YAML)')
  submit.add_argument(
    '--host',
    required=True,
    metavar='URL',
    help='the KFP API, e.g. http://localhost:8080',
  )
  submit.add_argument('--experiment', default='Default')
  submit.add_argument('--run-name', help='default: the pipeline name')
  add_verbose(submit, "the kfp client's connection retries")
  submit.set_defaults(func=cmd_submit)


def cmd_compile(args) -> int:
  from kubeflow import runner  # pylint: disable=g-import-not-at-top

  spec = load_spec(args)
  settings = runner.cluster_settings(
    spec,
    image=args.image,
    target=args.target,
    pipeline_root=args.pipeline_root,
    data=args.data,
    push_destination=args.push_destination,
  )
  compiled = runner.compile_pipeline(spec, settings, args.output)
  tasks = compiled['root']['dag']['tasks']
  print(
    f'wrote {args.output}: {settings.target} pipeline {spec.name}, '
    f'{len(tasks)} tasks, image {settings.image}'
  )
  for node_id, config in sorted(settings.platform_configs.items()):
    if node_id not in tasks:
      continue
    gpu = (
      f', {config.accelerator.count} x {config.accelerator.type}'
      if config.accelerator.type
      else ''
    )
    print(
      f'  {node_id}: cpu {config.cpu_limit or "-"}, memory '
      f'{config.memory_limit or "-"} GB{gpu}'
    )
  return 0


def cmd_submit(args) -> int:
  from kubeflow import submit  # pylint: disable=g-import-not-at-top

  result = submit.submit(args.file, args.host, args.experiment, args.run_name)
  print(f'submitted run {result["run_id"]}: {result["url"]}')
  return 0
