"""Fine-tuning against training from scratch, at several labelled-set sizes.

`python -m pipeline compare SPEC` answers the question fine-tuning exists
for: with few labelled examples of the target task, does starting from
pretrained weights beat training from scratch, by how much, and at what
cost in training time? It writes <output>.json (every run, the means and
spreads, the settings), <output>.md (the conclusion the numbers support,
first, then tables) and <output>.png (accuracy against labelled examples
and against training time). Two kinds of spec:

- A spec of numeric features with a base model (training.base_model, or
  `--base`): a fixed test set is held out from the spec's data; for each
  labelled-set size and repeat it trains `scratch` (the base model's
  architecture with freshly initialised weights and the same new head,
  every layer training at the head's learning rate) and each fine-tuning
  strategy (modules/finetune.py) from the base model's weights.
- A spec whose text or image column has a pretrained encoder
  (`model.encoders`: a BERT-family text encoder, an ImageNet CNN;
  `compare_media`): the test set is `--test-csv` (held-out rows with the
  same columns, e.g. a benchmark's sample of a data set's own test split)
  or else `--test-rows` rows held out from the spec's data. For each size
  and repeat a labelled set is drawn class by class in turn (as balanced
  as the classes allow; within a repeat a larger set contains the smaller
  ones, and every method trains on the same rows), run through the real
  Transform (the project's preprocessing_fn by tf.Transform's Beam API,
  in this process: analysed on the labelled rows only, as the pipeline
  analyses its train split, then applied to the test rows), and trained
  as `scratch_<encoder>`, the column through each of the project's learned
  encoders of its kind (text: bag, embedding; images: cnn) in the dnn
  `modules/model.build_model` builds, and as each fine-tuning strategy the
  spec's `search_space.finetune.strategy` lists, from the pretrained
  encoder (modules/finetune.Finetuner).

Every model takes the spec's default hyperparameters (the first value of
each search space entry) and trains for the same number of epochs, with
no early stopping and no validation split (so all of the labelled rows
train); seeds are fixed per repeat. Test accuracy is the task's predicted
class (modules/tasks.py) against the label; training seconds are
`fit`'s wall time (the model's first trace included, its building and
loading not).

The work is split by job: `numeric` (a base model) and `media` (a
pretrained encoder) run the two kinds, `verdict` says what their runs
support, `report` writes the files, and `common` holds what they share.
This module is the one the command line calls.
"""

# What the command line and the tests use, from the module of each job.
from pipeline.experiments.common import SCRATCH, CompareError, is_scratch
from pipeline.experiments.media import (
  MEDIA_SIZES,
  balanced_order,
  compare_media,
  encoder_name,
  pretrained_column,
)
from pipeline.experiments.numeric import check_base, compare
from pipeline.experiments.verdict import media_conclusion, summarize

__all__ = [
  'MEDIA_SIZES',
  'SCRATCH',
  'CompareError',
  'balanced_order',
  'check_base',
  'compare',
  'compare_media',
  'encoder_name',
  'is_scratch',
  'media_conclusion',
  'pretrained_column',
  'summarize',
]
