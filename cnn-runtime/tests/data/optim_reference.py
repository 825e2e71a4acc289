"""Prints the reference parameters used by the tests of cnn-runtime/src/optim.rs.

Three steps of torch.optim.SGD / torch.optim.Adam over fixed gradients from fixed
starting parameters (CPU, float32). Run: python3 optim_reference.py
"""
import torch
p0 = [0.5, -1.0, 2.0, 0.0, 3.25]
gs = [[0.1, -0.2, 0.3, -0.4, 0.0], [-0.05, 0.25, 0.3, 1.5, -2.0], [0.2, 0.2, -0.1, -0.3, 0.7]]
def run(make):
    p = torch.tensor(p0, dtype=torch.float32, requires_grad=True)
    opt = make([p])
    for g in gs:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    return [float(x) for x in p.detach()]
print(torch.__version__)
cases = {
 "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
 "sgd_momentum_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
 "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
 "sgd_dampening": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3),
 "adam_default": lambda ps: torch.optim.Adam(ps, lr=1e-3),
 "adam_wd": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
}
for k, f in cases.items():
    print(k, [repr(x) for x in run(f)])
