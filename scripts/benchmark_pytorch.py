"""The same reference model (28x28x1, batch norm, bilinear G) trained in PyTorch
on the CPU: the comparison README's speed section quotes. PyTorch is not a
dependency of this project; install it separately (pip install torch).

    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --variant eager --threads 2
    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --variant channels_last --bf16
    OMP_NUM_THREADS=2 python scripts/benchmark_pytorch.py --variant compile

It alternates D and G steps as trainer.py does (Adam 1e-4 / beta1 0.5, global
norm clip 20, the reference's losses; D also sees the real batch on G steps,
for its batch-norm statistics) and prints
variant=<v> bf16=<bool> batch=<B> threads=<n> training_instances_per_sec=<x>,
counting B instances per D step and per G step, as the trainer's log does.
"""
import argparse
import contextlib
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", choices=["eager", "channels_last", "compile"], default="eager")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=None,
                   help="run exactly this many D+G pairs (no warm-up) instead of timing")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B = args.batch
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
    print(f"variant={args.variant} bf16={args.bf16} batch={B} threads={args.threads} "
          f"training_instances_per_sec={ips:.2f}")


if __name__ == "__main__":
    main()
