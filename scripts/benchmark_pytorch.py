"""The same models trained in PyTorch on the CPU: the comparison docs/performance.md
quotes. PyTorch is not a dependency of this project; install
it separately (pip install torch).

    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --variant eager --threads 2
    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --variant channels_last --bf16
    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --variant compile
    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --arch paper --batch 100

--arch reference (the default): the reference model (28x28x1, batch norm,
bilinear G). It alternates D and G steps as trainer.py does (Adam 1e-4 /
beta1 0.5, global norm clip 20, the reference's losses; D also sees the real
batch on G steps, for its batch-norm statistics).

--arch paper: the paper's MNIST MLPs as `trainer.py --arch paper --method
improved_gan` trains them: D (Gaussian noise, weight-normalised 1000-500-
250-250-250-10) on a labeled, an unlabeled and a generated batch in one pass
with the paper's losses; G (500-500 with batch norm, weight-normalised
output) by feature matching on a batch of its own and fresh samples; Adam
lr 0.003 / beta1 0.5 (PyTorch's, epsilon outside the root: the same work),
no clip; after each D step the moving average of D's weights.

Prints variant=<v> bf16=<bool> batch=<B> threads=<n> ms_per_step=<t>
training_instances_per_sec=<x>, counting B instances per D step and per G
step, as the trainer's log does.
"""
import argparse
import contextlib
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:
    sys.exit("benchmark_pytorch.py needs PyTorch, which this project does not depend on "
             "(it is only for comparing): pip install torch (%s)" % error)

K = 10       # classes; D outputs K+1 logits (last one = "fake")
Z_DIM = 128


def same_pad(x, k=3, s=2):
    """TensorFlow 'SAME' padding for a kxk stride-s conv (extra pad goes bottom/right)."""
    def split(n):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    top, bottom = split(x.shape[2])
    left, right = split(x.shape[3])
    return F.pad(x, (left, right, top, bottom))


class Discriminator(nn.Module):
    def __init__(self, chans=(32, 64, 128, 256, 256)):
        super().__init__()
        ins = (1,) + chans[:-1]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, stride=2) for i, o in zip(ins, chans))
        self.bns = nn.ModuleList(nn.BatchNorm2d(o, eps=1e-3, momentum=0.1) for o in chans)
        self.fc = nn.Conv2d(chans[-1], chans[-1] // 4, 1)
        self.out = nn.Conv2d(chans[-1] // 4, K + 1, 1)

    def forward(self, x):                                 # [B,1,28,28]
        for conv, bn in zip(self.convs, self.bns):        # 28->14->7->4->2->1
            x = bn(F.leaky_relu(conv(same_pad(x)), 0.2))
        x = F.leaky_relu(self.fc(x), 0.2)
        return self.out(x).mean(dim=(2, 3))               # [B,K+1]


class Generator(nn.Module):
    def __init__(self, chans=(1024, 512, 256, 128, 64, 32), memory_format=torch.contiguous_format):
        super().__init__()
        self.memory_format = memory_format
        self.fc = nn.Linear(Z_DIM, chans[0])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in zip(chans[:-1], chans[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm2d(o, eps=1e-3, momentum=0.1) for o in chans[1:])
        self.out = nn.Conv2d(chans[-1], 1, 1)

    def forward(self, z):                                 # [B,128]
        x = F.leaky_relu(self.fc(z), 0.2)
        x = x.reshape(z.shape[0], -1, 1, 1).contiguous(memory_format=self.memory_format)
        for conv, bn in zip(self.convs, self.bns):        # 1->2->4->8->16->32
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = bn(F.relu(conv(x)))
        x = torch.tanh(self.out(x))
        return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


class WeightNormDense(nn.Module):
    """y = x (g v / ||v||) + b, the norm per output unit (the paper's nn.DenseLayer)."""

    def __init__(self, n_in, n_out, train_scale=False):
        super().__init__()
        self.v = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
        self.g = nn.Parameter(torch.ones(n_out), requires_grad=train_scale)
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.v * (self.g / self.v.norm(dim=0)) + self.b


class PaperD(nn.Module):
    def __init__(self, units=(1000, 500, 250, 250, 250)):
        super().__init__()
        ins = (784,) + units[:-1]
        self.layers = nn.ModuleList(WeightNormDense(i, o) for i, o in zip(ins, units))
        self.out = WeightNormDense(units[-1], K, train_scale=True)

    def forward(self, x):                                 # [B,784] in [0,1]
        x = x + 0.3 * torch.randn_like(x)
        for layer in self.layers:
            features = F.relu(layer(x))
            x = features + 0.5 * torch.randn_like(features)
        return self.out(x), features                      # [B,K] (fake logit 0), [B,250]


class PaperG(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(100, 500, bias=False), nn.Linear(500, 500, bias=False)
        self.bn1 = nn.BatchNorm1d(500, eps=1e-6, affine=False)
        self.bn2 = nn.BatchNorm1d(500, eps=1e-6, affine=False)
        self.beta1, self.beta2 = nn.Parameter(torch.zeros(500)), nn.Parameter(torch.zeros(500))
        self.out = WeightNormDense(500, 784, train_scale=True)

    def forward(self, z):                                 # [B,100] in [0,1]
        x = F.softplus(self.bn1(self.fc1(z)) + self.beta1)
        x = F.softplus(self.bn2(self.fc2(x)) + self.beta2)
        return torch.sigmoid(self.out(x))


def paper_steps(args, B):
    """(d_step, g_step) of the paper's recipe."""
    D, G = PaperD(), PaperG()
    d_params = [p for p in D.parameters() if p.requires_grad]
    g_params = [p for p in G.parameters() if p.requires_grad]
    d_opt = torch.optim.Adam(d_params, lr=0.003, betas=(0.5, 0.999), foreach=True)
    g_opt = torch.optim.Adam(g_params, lr=0.003, betas=(0.5, 0.999), foreach=True)
    averages = [p.detach().clone() for p in d_params]
    labels = torch.randint(0, K, (B,))

    def images():
        return torch.rand(B, 784)

    def d_step():
        with torch.no_grad():
            fake = G(torch.rand(B, 100))
        logits, _ = D(torch.cat([images(), images(), fake]))
        lab, unl, gen = logits.split(B)
        lse_unl, lse_gen = unl.logsumexp(1), gen.logsumexp(1)
        loss = (F.cross_entropy(lab, labels)
                + 0.5 * (F.softplus(lse_unl) - lse_unl).mean() + 0.5 * F.softplus(lse_gen).mean())
        d_opt.zero_grad(set_to_none=True)
        loss.backward()
        d_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(averages, [p.detach() for p in d_params], 1e-4)

    def g_step():
        D.requires_grad_(False)
        with torch.no_grad():
            _, real_features = D(images())
        _, fake_features = D(G(torch.rand(B, 100)))
        loss = (real_features.mean(0) - fake_features.mean(0)).square().mean()
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        g_opt.step()
        for p in d_params:
            p.requires_grad_(True)
    return d_step, g_step


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", choices=["reference", "paper"], default="reference")
    p.add_argument("--variant", choices=["eager", "channels_last", "compile"], default="eager")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=None,
                   help="run exactly this many D+G pairs (no warm-up) instead of timing")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.arch == "paper" and (args.variant != "eager" or args.bf16):
        p.error("--arch paper runs --variant eager in float32")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B = args.batch
    steps = paper_steps if args.arch == "paper" else reference_steps
    d_step, g_step = steps(args, B)
    return report(args, B, d_step, g_step)


def reference_steps(args, B):
    """(d_step, g_step) of the reference model as trainer.py trains it."""
    mf = torch.channels_last if args.variant == "channels_last" else torch.contiguous_format

    D = Discriminator().to(memory_format=mf)
    G = Generator(memory_format=mf).to(memory_format=mf)
    d_opt = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    d_fwd, g_fwd = (torch.compile(D), torch.compile(G)) if args.variant == "compile" else (D, G)

    real = (torch.rand(B, 1, 28, 28) * 2 - 1).contiguous(memory_format=mf)
    labels = torch.randint(0, K, (B,))
    fake_target = torch.tensor([0.01] * K + [0.9])

    def amp():
        return torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def sample_z():
        return torch.rand(B, Z_DIM) * 2 - 1

    def d_step():
        with torch.no_grad(), amp():               # G forward only; no gradient into G
            fake = g_fwd(sample_z())
        with amp():
            logits_real = d_fwd(real).float()
            logits_fake = d_fwd(fake.detach()).float()
        loss = (F.cross_entropy(logits_real, labels)
                + F.cross_entropy(logits_fake, fake_target.expand(B, -1)))
        d_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(D.parameters(), 20.0)
        d_opt.step()

    def g_step():
        D.requires_grad_(False)                    # gradients flow into G only
        with amp():
            fake = g_fwd(sample_z())
            with torch.no_grad():
                d_fwd(real)                        # only to update D's batch-norm statistics
            logits_fake = d_fwd(fake).float()
        loss = (-F.softplus(-logits_fake[:, K])).mean() \
            + 10.0 * F.huber_loss(fake.float(), real, delta=1.0)
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(G.parameters(), 20.0)
        g_opt.step()
        D.requires_grad_(True)
    return d_step, g_step


def report(args, B, d_step, g_step):
    def pair():
        d_step()
        g_step()

    if args.steps is not None:                     # smoke check: fixed number of pairs, no warm-up
        t0 = time.perf_counter()
        for _ in range(args.steps):
            pair()
        pairs = args.steps
    else:
        for _ in range(10 if args.variant == "compile" else 5):
            pair()
        pairs = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            pair()
            pairs += 1
    elapsed = time.perf_counter() - t0

    ips = 2 * pairs * B / elapsed                  # D and G steps each process B instances
    print(f"arch={args.arch} variant={args.variant} bf16={args.bf16} batch={B} "
          f"threads={args.threads} ms_per_step={1e3 * elapsed / (2 * pairs):.2f} "
          f"training_instances_per_sec={ips:.2f}")


if __name__ == "__main__":
    main()
