"""Workshop: a "Clever Hans" classifier (Lapuschkin et al. 2019, Nat. Commun. 10:1096).

Images (1 x 16 x 16) of a faint horizontal bar (class "horizontal") or vertical bar
(class "vertical") under noise. Every training image of the "vertical" class also carries
a small checkerboard watermark in the bottom-right corner, as a copyright tag on the photos
of one class would. The CNN's test accuracy looks excellent, because the test images are
tagged the same way. Explanations reveal that it reads the tag, and the relevance mass
on the watermark (Arras et al. 2022) quantifies it. Removing the tag, or adding it to the
other class, confirms the shortcut.

Grad-CAM is the exception that the numbers show: its map lives at the last conv layer,
4 x 4 cells of 4 x 4 pixels here, and the 4 x 4-pixel tag (rows/cols 11-14) straddles
a cell boundary. The map peaks on the cell diagonally inside the tag (pixels 8-11, which
touches the tag at one pixel) and bilinear upsampling spreads it, so its relevance mass on
the tag is about the tag's area share, although it points next to the tag on every image
(pointing game within 2 pixels) and puts about twice its area share on the bottom-right
quadrant. That is Grad-CAM's resolution, not a failure to see the shortcut.

Run:  python examples/workshop_clever_hans.py     (under a minute on 2 cores)
"""
from __future__ import annotations

import numpy as np

from _workshop import explain_all, save, setup

#: label -> (lumos method, options). LRP: the epsilon-plus composite (z+ in conv layers,
#: epsilon in dense ones); occlusion of single pixels (2 x 2 patches on a fixed grid
#: straddle the tag and score 0.31);
#: Grad-CAM at its standard layer, the last conv block (4 x 4 positions here).
METHODS = {
    "gradient_x_input": ("gradient_x_input", {}),
    "integrated_gradients": ("integrated_gradients", {"n_steps": 32}),
    "lrp": ("lrp", {"composite": "epsilon_plus"}),
    "occlusion": ("occlusion", {"window": (1, 1, 1)}),
    "grad_cam": ("grad_cam", {"layer": "features"}),
}
PIXEL_LEVEL = ("gradient_x_input", "integrated_gradients", "lrp", "occlusion")


def data(seed=0, n_samples=1200):
    from lumos.data import make_clever_hans_images

    return make_clever_hans_images(n_samples=n_samples, size=16, shortcut_class=1, watermark_rate=1.0, signal=0.25,
                                   noise=0.25, seed=seed)


def train(ds, seed=0, quiet=False, epochs=15):
    import torch

    from lumos.models.cache import cached_fit
    from lumos.models.reference import CNN2d

    torch.manual_seed(seed)
    model = CNN2d(1, 2, channels=(8, 16, 16))
    return cached_fit(model, ds.X_train, ds.y_train, epochs=epochs, lr=3e-3, seed=seed, name="clever-hans-CNN2d",
                      progress=not quiet)


def accuracy(model, X, y) -> float:
    import torch

    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


def relevance_mass(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Share of the positive relevance inside the mask, per image (Arras et al. 2022)."""
    from lumos.metrics import relevance_mass_accuracy

    return relevance_mass_accuracy(values, mask)


def main(quiet=False, seed=0, n_samples=1200, epochs=15) -> dict:
    setup(seed=seed)
    from lumos.data import add_watermark

    ds = data(seed, n_samples)
    model = train(ds, seed, quiet, epochs)
    sc = ds.extra["shortcut_class"]
    clean = ds.X_test.copy()
    tagged_idx = np.where(ds.extra["watermark_test"])[0]
    clean[tagged_idx] = data_without_tag(ds, tagged_idx)
    other = np.where(ds.y_test != sc)[0]
    fooled, _ = add_watermark(ds.X_test[other], size=4, value=1.0)
    results = {
        "accuracy_as_tested": accuracy(model, ds.X_test, ds.y_test),
        "accuracy_tag_removed": accuracy(model, clean, ds.y_test),
        "other_class_with_tag_called_shortcut": float(
            (np.argmax(_scores(model, fooled), 1) == sc).mean()),
    }
    from lumos.metrics import pointing_game

    x = ds.X_test[tagged_idx[:64]]
    exps = explain_all(model, x, METHODS, target=sc, quiet=quiet)
    masks = ds.mask_test[tagged_idx[:64]]
    corner = np.zeros_like(masks)
    corner[..., masks.shape[-2] // 2:, masks.shape[-1] // 2:] = True  # the quadrant that holds the tag
    results["mass_on_watermark"] = {n: float(relevance_mass(e.values, masks).mean()) for n, e in exps.items()}
    results["mass_on_tag_quadrant"] = {n: float(relevance_mass(e.values, corner).mean()) for n, e in exps.items()}
    results["pointing_game_2px"] = {n: float(pointing_game(e.values, masks, tolerance=2).mean())
                                    for n, e in exps.items()}
    results["watermark_area_share"] = float(masks[0].mean())
    figure(ds, x[:4], masks[:4], exps, results, quiet)
    if not quiet:
        print(f"test accuracy as the test set comes (tagged like training): {results['accuracy_as_tested']:.3f}")
        print(f"test accuracy with the tag removed:                        {results['accuracy_tag_removed']:.3f}")
        print(f"'horizontal' images given the tag, called 'vertical':       "
              f"{results['other_class_with_tag_called_shortcut']:.3f}")
        for n, m in results["mass_on_watermark"].items():
            print(f"  {n:<24} relevance mass on the watermark {m:.2f} "
                  f"(it covers {results['watermark_area_share']:.1%} of the image); on its quadrant "
                  f"{results['mass_on_tag_quadrant'][n]:.2f}; pointing game (2 px) {results['pointing_game_2px'][n]:.2f}")
    return results


def _scores(model, X):
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(X)).numpy()


def data_without_tag(ds, idx):
    """The tagged test images with the tag replaced by background noise statistics."""
    rng = np.random.default_rng(1)
    X = ds.X_test[idx].copy()
    m = ds.mask_test[idx]
    X[m] = np.clip(0.3 + rng.normal(0, 0.25, m.sum()), 0, 1)
    return X


def figure(ds, x, masks, exps, results, quiet):
    import matplotlib.pyplot as plt

    names = {0: ds.class_names[0], 1: ds.class_names[1]} if ds.class_names else {0: "0", 1: "1"}
    sc = ds.extra["shortcut_class"]
    cols = 1 + len(exps)
    fig, axes = plt.subplots(len(x), cols, figsize=(2.0 * cols, 2.0 * len(x) + 1.0), squeeze=False)
    for i in range(len(x)):
        axes[i, 0].imshow(x[i, 0], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].contour(masks[i, 0], levels=[0.5], colors="yellow", linewidths=1)
        for j, (name, e) in enumerate(exps.items(), 1):
            v = np.broadcast_to(e.values[i], x[i].shape).sum(0)
            lim = np.abs(v).max() or 1
            im = axes[i, j].imshow(v, cmap="bwr", vmin=-lim, vmax=lim)
            axes[i, j].contour(masks[i, 0], levels=[0.5], colors="k", linewidths=0.8)
            if i == 0:
                axes[i, j].set_title(f"{name.replace('_', ' ')}\nmass on tag {results['mass_on_watermark'][name]:.2f}",
                                     fontsize=8)
    axes[0, 0].set_title(f"input (class '{names[sc]}')\nyellow: watermark", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    cbar = fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), shrink=0.5, ticks=[-1, 0, 1] if False else None)
    cbar.set_ticks([cbar.vmin, 0, cbar.vmax])
    cbar.set_ticklabels([f"against '{names[sc]}'", "0", f"for '{names[sc]}'"])
    cbar.ax.tick_params(labelsize=7)
    fig.suptitle(f"Clever Hans: test accuracy {results['accuracy_as_tested']:.2f} as tested, "
                 f"{results['accuracy_tag_removed']:.2f} with the tag removed.\n"
                 f"Score of class '{names[sc]}' explained; each panel scaled to its largest |relevance|; "
                 f"tag area share {results['watermark_area_share']:.3f}",
                 fontsize=9)
    save(fig, "clever_hans_heatmaps.png", quiet)


if __name__ == "__main__":
    main()
