"""Fit y = 3x - 2 + noise with ember's autograd: the smallest end-to-end check of the core.

Run: python examples/quickstart.py
"""
import ember as em

em.manual_seed(0)
x = em.randn(256, 1)
y = 3 * x - 2 + 0.1 * em.randn(256, 1)

w = em.zeros(1, 1, requires_grad=True)
b = em.zeros(1, requires_grad=True)
lr = 0.1
for step in range(201):
    loss = ((x @ w + b - y) ** 2).mean()
    loss.backward()
    with em.no_grad():
        w -= lr * w.grad
        b -= lr * b.grad
    w.grad = None
    b.grad = None
    if step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")

print(f"learned w={w.item():.3f} b={b.item():.3f} (true 3, -2)")
assert abs(w.item() - 3) < 0.05 and abs(b.item() + 2) < 0.05, "quickstart did not converge"
