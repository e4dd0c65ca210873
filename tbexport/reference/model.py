"""A small CNN for 8x8 digits, logging what Lightning users typically log."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class DigitsClassifier(pl.LightningModule):
    """Two conv layers and a linear head; reaches well over 90% validation accuracy."""

    def __init__(
        self, lr: float = 1e-3, hidden: int = 32, dropout: float = 0.1, weight_decay: float = 1e-4
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(hidden * 16, 10),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # type: ignore[no-any-return]

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        predictions = logits.argmax(dim=1)
        accuracy = (predictions == labels).float().mean()
        return loss, accuracy, predictions, labels

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, accuracy, _, _ = self._step(batch)
        # on_step + on_epoch gives train_loss_step and train_loss_epoch
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train_acc", accuracy, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, accuracy, predictions, labels = self._step(batch)
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_acc", accuracy, prog_bar=True)
        self.log("hp_metric", accuracy)
        precision, recall = _macro_precision_recall(predictions, labels)
        self.log_dict(
            {"val_metrics/precision_macro": precision, "val_metrics/recall_macro": recall}
        )

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, accuracy, _, _ = self._step(batch)
        self.log("test_loss", loss)
        self.log("test_acc", accuracy)

    def configure_optimizers(self) -> Any:
        hparams: Any = self.hparams
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=hparams.lr, weight_decay=hparams.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


def _macro_precision_recall(
    predictions: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    classes = torch.arange(10, device=labels.device)
    predicted = predictions.unsqueeze(1) == classes
    actual = labels.unsqueeze(1) == classes
    true_positive = (predicted & actual).sum(0).float()
    precision = true_positive / predicted.sum(0).clamp(min=1)
    recall = true_positive / actual.sum(0).clamp(min=1)
    return precision.mean(), recall.mean()
