"""Label smoothing on the masked-token loss (Szegedy et al. 2016): the target puts 1 - eps on
the true token and spreads eps over the vocabulary. It changes the loss that is minimized, so
the run is in the open track (Rules v1 section 6); the MLM loss it logs, and the val loss, stay
the plain cross-entropy, comparable with every other run.

    cram pretrain --data data/demo --preset tiny --budget 90s --out runs/smooth \\
        --plugin examples/plugins/label_smoothing.py plugin.options.eps=0.1
"""

import torch.nn.functional as F

CRAM_PLUGIN_API = 1


def objective(model, inputs, labels, options):
    mlm_loss, logits = model(inputs, labels)
    targets = labels.reshape(-1)
    if logits.shape[0] != targets.shape[0]:  # sparse prediction: logits of the masked rows only
        targets = targets[targets != -100]
    loss = F.cross_entropy(logits.float(), targets, ignore_index=-100,
                           label_smoothing=float(options.get("eps", 0.1)))
    return loss, mlm_loss
