"""LeNet5 (LeCun et al., 1998) as it is taught today: ReLU and max pooling.

    (N, 1, 28, 28) -conv 5x5 pad 2-> (N, 6, 28, 28) -pool-> (N, 6, 14, 14)
                   -conv 5x5------> (N, 16, 10, 10) -pool-> (N, 16, 5, 5)
                   -flatten-> 400 -> 120 -> 84 -> num_classes
"""

from __future__ import annotations

from minigrad import checks, nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        checks.integer("LeNet5", "num_classes", num_classes, minimum=1)
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNet5: expected images of shape (N, 1, 28, 28), got {x.shape}")
        return self.classifier(self.features(x))
