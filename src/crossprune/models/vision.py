"""torchvision classifiers (ResNet, MobileNet, … by builder name): `body` gives the penultimate features and `head`
is the builder's last Linear; the stem, widths and channel counts are adapted to small inputs and small CPUs.

Every width, including what structured pruning left, is a `shapes` entry (module name -> channel counts): the
built net is reshaped to it, and `structure()` writes the entries that differ from the configured net.
"""

import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from torchvision.models import get_model  # importable on CPU-only torch: crossprune/__init__ installs the hook

from crossprune.config.errors import one_line

RESHAPED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
AUX_LOGITS = ("googlenet", "inception_v3")  # built without their auxiliary classifiers: features are one tensor
Shapes = dict[str, list[int]]  # [in, out, groups] of a Conv2d, [in, out] of a Linear, [features] of a BatchNorm2d


class TorchvisionNet(nn.Module):
    def __init__(self, input_shape: list[int], num_classes: int, arch: str = "resnet18", width: float = 1.0,
                 cifar_stem: bool = False, weights: str | None = None, shapes: Shapes | None = None):
        super().__init__()
        if not isinstance(cifar_stem, bool):
            raise ValueError(f"model.cifar_stem must be true or false, got {cifar_stem!r}")
        if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
            raise ValueError(f"model.width must be a number > 0 scaling every channel count, got {width!r}")
        self.input_shape, self.arch = list(input_shape), arch
        body = build(arch, num_classes, fresh=width != 1)
        if cifar_stem:
            to_cifar_stem(body)
        linears = [n for n, m in body.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"{arch} ends in no Linear layer, so it has no head to replace")
        head, last = linears[-1], body.get_submodule(linears[-1])
        # MobileNet's dropout sits before its last Linear: it stays in `body`, so features are dropped out while
        # training (as the builder trains its classifier) and deterministic in eval mode (probes, scoring).
        body.set_submodule(head, nn.Identity())
        self.body, self.head = body, last
        self.configured_shapes = scaled(shape_of(self), width, input_shape[0], self.stem())
        check_width(self, width)
        given = {str(n): [int(c) for c in s] for n, s in (shapes or {}).items()}  # Hydra passes a DictConfig
        target = self.configured_shapes | given
        target["head"] = [target["head"][0], num_classes]  # the classes are num_classes, whatever `shapes` says
        reshape(self, target, every=width != 1)
        # A net rebuilt from `shapes` is a structurally pruned one about to load its own saved weights, and a file of
        # initial weights no longer fits its widths: only the configured net starts from them.
        if weights is not None and not given:
            self.load_weights(Path(weights), head)

    def stem(self) -> str:
        """The first conv, which reads the image."""
        return next(n for n, m in self.named_modules() if isinstance(m, nn.Conv2d))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def structure(self) -> dict:
        """Constructor arguments that rebuild this network's current shapes (after channel removal too): the
        shapes that differ from the configured net, JSON-ready."""
        built = self.configured_shapes | {"head": [self.configured_shapes["head"][0], self.head.out_features]}
        shapes = {n: s for n, s in shape_of(self).items() if s != built.get(n)}
        return {"shapes": shapes, "num_classes": self.head.out_features}

    def load_weights(self, path: Path, head: str) -> None:
        """Initial weights from a safetensors or torch file, named as here (`body.…`, `head.…`) or as the builder
        names them (`conv1.weight`, `fc.weight`). A head for another class count (ImageNet's 1000) stays at init:
        its classes are the data's, not the file's."""
        try:
            if path.suffix == ".safetensors":
                raw = load_file(path)
            else:
                raw = torch.load(path, map_location="cpu", weights_only=True)
            if not all(isinstance(v, Tensor) for v in raw.values()):
                raise TypeError("it is not a flat dict of tensors (a state dict)")
            state = {ours(k, head): v for k, v in raw.items()}
        except Exception as e:  # missing, unreadable, or not a flat dict of tensors
            raise ValueError(f"model.weights={path} cannot be read as weights: {one_line(e)}") from e
        own = self.state_dict()
        heads = [k for k in own if k.startswith("head.")]
        if any(k not in state or state[k].shape != own[k].shape for k in heads):
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
        problems = [f"{k} is not in the file" for k in own if k not in state and k not in heads
                    and not k.endswith("num_batches_tracked")]  # older files lack BatchNorm's counter
        problems += [f"{k} is not in {self.arch}" for k in state if k not in own]
        problems += [f"{k} has shape {list(state[k].shape)} there, {list(v.shape)} here" for k, v in own.items()
                     if k in state and state[k].shape != v.shape]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ValueError(f"model.weights={path} does not fit {self.arch}: {problems[0]}{more}")
        self.load_state_dict(state, strict=False)


def build(arch: str, num_classes: int, fresh: bool) -> nn.Module:
    """The builder's net. When every layer is rebuilt anyway (`fresh`), its weights need not exist: it is built on
    the meta device, 10× faster, unless the builder computes its widths with tensors (RegNet)."""
    options = {"weights": None, "num_classes": num_classes} | ({"aux_logits": False} if arch in AUX_LOGITS else {})
    if fresh:
        try:
            with torch.device("meta"):
                return get_model(arch, **options)
        except NotImplementedError:
            pass
    return get_model(arch, **options)


def ours(key: str, head: str) -> str:
    """A state-dict key in this net's names: the builder's head is `head`, everything else lives in `body`."""
    if key.startswith(("body.", "head.")):
        return key
    return f"head.{key.removeprefix(head + '.')}" if key.startswith(head + ".") else f"body.{key}"


def to_cifar_stem(body: nn.Module) -> None:
    """The usual CIFAR adaptation of ImageNet nets: a 3×3 stride-1 first conv and no max-pool after it (as He et al.
    2016's CIFAR ResNets), so a 32×32 image is not cut to 8×8 before the first block."""
    convs = [n for n, m in body.named_modules() if isinstance(m, nn.Conv2d)]
    first = body.get_submodule(convs[0])
    body.set_submodule(convs[0], conv(first.in_channels, first.out_channels, 3, 1, 1, bias=first.bias is not None))
    names = [n for n, _ in body.named_modules()]
    for n, m in body.named_modules():  # the stem's pool: a max-pool before the second conv (ResNet's maxpool)
        if isinstance(m, nn.MaxPool2d) and (len(convs) < 2 or names.index(n) < names.index(convs[1])):
            body.set_submodule(n, nn.Identity())
            break


def shape_of(net: nn.Module) -> Shapes:
    """The channel counts (and a conv's groups) of every Conv2d, BatchNorm2d and Linear, by module name."""
    shapes = {}
    for n, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            shapes[n] = [m.in_channels, m.out_channels, m.groups]
        elif isinstance(m, nn.Linear):
            shapes[n] = [m.in_features, m.out_features]
        elif isinstance(m, nn.BatchNorm2d):
            shapes[n] = [m.num_features]
    return shapes


def scaled(shapes: Shapes, width: float, channels: int, stem: str) -> Shapes:
    """Every channel count times `width` (at least 1) but the image's channels, which the stem reads, and the head's
    classes. Equal counts scale equally, so the widths on both sides of a residual add still agree. A depthwise conv
    stays depthwise; a grouped one (ResNeXt, RegNet) keeps its channels per group where the counts allow."""
    scale = lambda c: max(1, int(c * width + 0.5))  # noqa: E731
    out = {}
    for n, s in shapes.items():
        if len(s) == 1:  # BatchNorm
            out[n] = [scale(s[0])]
            continue
        c_in, c_out = channels if n == stem else scale(s[0]), s[1] if n == "head" else scale(s[1])
        if len(s) == 2:  # Linear
            out[n] = [c_in, c_out]
        else:
            depthwise = 1 < s[2] == s[0] == s[1]
            out[n] = [c_in, c_out, c_in if depthwise else math.gcd(c_in, c_out, scale(s[2]))]
    return out


def check_width(net: nn.Module, width: float) -> None:
    """Width scales Conv2d, BatchNorm2d and Linear layers only: refuse a net with other layers that hold tensors."""
    if width == 1:
        return
    for n, m in net.named_modules():
        tensors = [*m.parameters(recurse=False), *m.buffers(recurse=False)]
        if tensors and not isinstance(m, RESHAPED):
            raise ValueError(f"model.width scales Conv2d, BatchNorm2d and Linear layers; {net.arch} also has "
                             f"{type(m).__name__} {n or 'itself'} (use model.width=1)")


def reshape(net: nn.Module, shapes: Shapes, every: bool = False) -> None:
    """Replace each layer whose channel counts differ from `shapes` (`every` layer) by a freshly initialised one."""
    for n, s in shapes.items():
        m = net.get_submodule(n)
        if every or shape_of(m)[""] != s:
            net.set_submodule(n, resized(m, s))


def resized(m: nn.Module, s: list[int]) -> nn.Module:
    """`m` with other channel counts (and groups) and every other setting kept."""
    if isinstance(m, nn.Conv2d):
        return conv(s[0], s[1], m.kernel_size, m.stride, m.padding, m.dilation, s[2], m.bias is not None,
                    m.padding_mode)
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(s[0], m.eps, m.momentum, m.affine, m.track_running_stats)
    return nn.Linear(s[0], s[1], m.bias is not None)


def conv(*args, **kwargs) -> nn.Conv2d:
    """An nn.Conv2d initialised as torchvision's classifiers (ResNet, MobileNet, EfficientNet) initialise theirs."""
    c = nn.Conv2d(*args, **kwargs)
    nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
    if c.bias is not None:
        nn.init.zeros_(c.bias)
    return c
