"""GUI responsiveness on a ≥ 5 GB stack: first frame, energy steps, Inspect clicks.

Writes a float32 stack (default 210 energies × 2600 × 2600 = 5.7 GB) page by page from a
tiled synthetic sample (real Fe references, grains and mixtures, noise) into
``/tmp/xafsmap-bench/`` — never holding it in memory — opens it through the plugin's
reader in a real, shown napari viewer and measures

* time to first frame: ``viewer.open`` → the first canvas draw;
* energy steps: ``viewer.dims`` set to a random energy → the canvas has drawn it;
* per-click spectrum latency of the Inspect dock: a click (``inspect_position``) at a
  random pixel → the dock's plot canvas paints that pixel's spectrum (a Qt paint event of
  the canvas while its title names the pixel: a full draw or a blit alike; median and p95
  over the clicks after the first), and click → the worker has read and normalized it;
* following the mouse: 60 moves at 60 Hz along a row → reads made, pixels plotted, the
  last pixel shown after the last move, the longest gap between processed events;
* with ``--map``, the Map dock's Map button (training on the bundled Fe, FeO, Fe2O3
  references first): click → the first band's labels drawn on the canvas ("first labels"),
  click → every map layer in place ("all maps"), the time the dock reports, and the longest
  stall of the event loop meanwhile (a 5 ms timer; a stall shows as a long gap).

``--stack FILE`` measures an existing stack (its energies file beside it) instead of
writing one, and never deletes it, e.g. the benchmark stack of docs/performance.md::

    xvfb-run -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/gui_latency.py \
        --stack /work/bench/stack-4000.tif --map

Each is measured with the file's pages evicted from the page cache (``posix_fadvise
DONTNEED``, "cold", as after opening a file for the first time) and again warm. The
stack is deleted afterwards (``--keep`` keeps it). Run under a display or Xvfb::

    xvfb-run -s "-screen 0 1920x1200x24" .venv/bin/python benchmarks/gui_latency.py

The canvas draw is observed through napari's vispy canvas (a private attribute: this
is a benchmark, not plugin code).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from run import evict  # benchmarks/run.py: one eviction for every benchmark

FOLDER = Path("/tmp/xafsmap-bench")


def write_stack(path: Path, *, energies: int, rows: int, cols: int, tile: int = 260, seed: int = 0) -> Path:
    """Write the stack page by page (BigTIFF, contiguous) with its ``.energies.txt`` sidecar."""
    import tifffile

    from xafsmap.core.spectra.normalize import normalize
    from xafsmap.core.model.standards import resample_reference
    from xafsmap.core.simulate.sample import bundled_references, make_sample

    grid = np.linspace(7050.0, 7250.0, energies)
    sample = make_sample((tile, tile), rng=seed)
    refs = {r.name: r for r in bundled_references(["Fe", "FeO", "Fe2O3", "Fe3O4"])}
    mu = np.array([resample_reference(refs[r.name], grid, mu=normalize(refs[r.name].mu, refs[r.name].energies).norm)
                   for r in sample.references] + [resample_reference(refs["Fe3O4"], grid, mu=normalize(
                       refs["Fe3O4"].mu, refs["Fe3O4"].energies).norm)], dtype=np.float32)
    fractions = sample.fractions.astype(np.float32)  # (K, tile, tile), unexplained phase last
    reps = (-(-rows // tile), -(-cols // tile))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((4, tile, tile)).astype(np.float32) * 0.02

    def pages():
        for i in range(energies):
            page = np.tensordot(mu[: fractions.shape[0], i], fractions, axes=1) + 0.3
            page = page + noise[i % 4]
            yield np.tile(page, reps)[:rows, :cols].astype(np.float32)

    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(pages(), shape=(energies, rows, cols), dtype=np.float32, photometric="minisblack",
                  metadata={"energies": grid.tolist()})
    path.with_name(f"{path.stem}.energies.txt").write_text("".join(f"{e!r}\n" for e in grid.tolist()))
    return path


class DrawWatch:
    """Counts the draws of the viewer's canvas and waits for the next one."""

    def __init__(self, viewer, app):
        self.app, self.count = app, 0
        viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(self._drawn, position="last")

    def _drawn(self, event):
        self.count += 1

    def wait(self, since: int, *, timeout: float = 120.0) -> None:
        end = time.perf_counter() + timeout
        while self.count <= since:
            self.app.processEvents()
            if time.perf_counter() > end:
                raise TimeoutError("the canvas did not draw")
            time.sleep(0.0005)


def first_frame(viewer, watch, path: Path) -> tuple[float, object]:
    seen = watch.count
    tic = time.perf_counter()
    [layer] = viewer.open(str(path), plugin="xafsmap")
    watch.wait(seen)
    return time.perf_counter() - tic, layer


def energy_steps(viewer, watch, n: int, rng) -> list[float]:
    times = []
    n_energies = viewer.dims.nsteps[0]
    for index in rng.choice(n_energies, n, replace=False):
        seen = watch.count
        tic = time.perf_counter()
        viewer.dims.set_current_step(0, int(index))
        watch.wait(seen)
        times.append(time.perf_counter() - tic)
    return times


class PaintWatch:
    """Records each paint of the Inspect plot's canvas: (time, the title shown)."""

    def __init__(self, inspect):
        from qtpy.QtCore import QEvent, QObject

        self.paints, title = [], inspect.plot.axes[0].get_title

        class Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
                if event.type() == QEvent.Type.Paint:
                    watch.paints.append((time.perf_counter(), title()))
                return False

        watch = self
        self.filter = Filter()
        inspect.plot.canvas.installEventFilter(self.filter)


def clicks(viewer, inspect, app, n: int, rng) -> tuple[list[float], list[float]]:
    """Click latency: inspect_position → the plot's canvas paints the new spectrum (a full
    draw or a blit); and → the worker has read and normalized it."""
    import xafsmap._widgets.inspect as module

    watch = getattr(inspect, "_bench_paints", None) or PaintWatch(inspect)
    inspect._bench_paints = watch
    read, tic = [], [0.0]
    real = module.read_spectrum

    def timed(*args):
        value = real(*args)
        read.append(time.perf_counter() - tic[0])
        return value

    module.read_spectrum = timed
    _, rows, cols = inspect.session.stack.data.shape
    times = []
    try:
        for _ in range(n):
            r, c = int(rng.integers(rows)), int(rng.integers(cols))
            before = len(watch.paints)
            tic[0] = time.perf_counter()
            inspect.inspect_position((0, r, c))
            want = f"pixel ({r}, {c})"
            end = time.perf_counter() + 60
            while not any(want in title for _, title in watch.paints[before:]):
                app.processEvents()
                time.sleep(0.0005)
                if time.perf_counter() > end:
                    raise AssertionError(f"the plot never showed {want}")
            times.append(next(t for t, title in watch.paints[before:] if want in title) - tic[0])
            settle = time.perf_counter() + 0.05  # the marker's redraw, the worker's finish
            while time.perf_counter() < settle:
                app.processEvents()
                time.sleep(0.0005)
    finally:
        module.read_spectrum = real
    return times, read


class StackSampler:
    """Samples the GUI thread's Python stack every ``interval`` s from a daemon thread, so a
    stall of the event loop can be traced to the code that ran on the GUI thread then."""

    def __init__(self, interval: float = 0.01):
        import sys
        import threading

        self.samples, self.interval, self._stop = [], interval, threading.Event()
        self._main = threading.main_thread().ident
        self._frames = sys._current_frames
        self._thread = threading.Thread(target=self._run, daemon=True, name="stack sampler")
        self._thread.start()

    def _run(self):
        import traceback

        while not self._stop.wait(self.interval):
            frame = self._frames().get(self._main)
            if frame is not None:
                stack = traceback.extract_stack(frame)
                self.samples.append((time.perf_counter(), [f"{'/'.join(Path(f.filename).parts[-2:])}:{f.lineno} {f.name}"
                                                           for f in stack]))

    def stop(self):
        self._stop.set()
        self._thread.join()

    def during(self, start: float, end: float, *, top: int = 12) -> list[str]:
        """The innermost frames seen between ``start`` and ``end`` (with their five callers),
        most frequent first."""
        from collections import Counter

        seen = Counter()
        for t, stack in self.samples:
            if start <= t <= end:
                inner = stack[-1]
                seen[f"{inner}  <- {' <- '.join(reversed(stack[-6:-1]))}"] += 1
        return [f"{n:4d} x {where}" for where, n in seen.most_common(top)]


def follow(viewer, inspect, app, n: int, rng) -> dict:
    """Following the mouse: ``n`` moves 16 ms apart (60 Hz) along a row, as *follow the mouse*
    sends them; the reads made, the plots painted, the time from the last move until the plot
    shows the last pixel, and the longest gap between processed events meanwhile."""
    import xafsmap._widgets.inspect as module

    watch = inspect._bench_paints
    reads, real = [], module.read_spectrum
    module.read_spectrum = lambda *args: reads.append(1) or real(*args)
    _, rows, cols = inspect.session.stack.data.shape
    r, c0 = int(rng.integers(rows)), int(rng.integers(cols - n))
    before, gaps, last = len(watch.paints), [], time.perf_counter()
    try:
        for k in range(n):
            inspect.inspect_position((0, r, c0 + k))
            end = time.perf_counter() + 0.016
            while time.perf_counter() < end:
                app.processEvents()
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
                time.sleep(0.001)
        moved = time.perf_counter()
        want = f"pixel ({r}, {c0 + n - 1})"
        while not any(want in title for _, title in watch.paints[before:]):
            app.processEvents()
            time.sleep(0.0005)
            if time.perf_counter() > moved + 60:
                raise AssertionError(f"the plot never showed {want}")
        shown = next(t for t, title in watch.paints[before:] if want in title)
    finally:
        module.read_spectrum = real
    titles = {title for _, title in watch.paints[before:]}
    return {"moves": n, "reads": len(reads), "pixels_plotted": len(titles), "last_shown_s": shown - moved,
            "longest_gap_s": max(gaps)}


def layer_adds(viewer, app, shape, rounds: int = 2) -> list[tuple]:
    """Adding a map-sized Image and Labels layer on the GUI thread (what Map's result handler
    does once per layer): the ``add_*`` call, then the next turn of the loop (its first paint);
    with and without putting the selection back on the stack afterwards."""
    rows = []
    for keep in [False, True] * rounds:
        for kind in ("image", "labels"):
            data = np.zeros(shape, np.float32 if kind == "image" else np.uint8)
            selected = viewer.layers.selection.active
            tic = time.perf_counter()
            layer = getattr(viewer, f"add_{kind}")(data, **({"contrast_limits": (0, 1)} if kind == "image" else {}))
            added = time.perf_counter()
            if keep:
                viewer.layers.selection.active = selected
            app.processEvents()
            rows.append((kind, keep, added - tic, time.perf_counter() - added))
            viewer.layers.remove(layer)
            for _ in range(50):
                app.processEvents()
                time.sleep(0.002)
    return rows


def map_latency(viewer, stack_dock, watch, app, references) -> dict:
    """Map click → first labels drawn, → all map layers in place; the longest event-loop stall
    and the GUI thread's stack sampled during it."""
    from qtpy.QtCore import QTimer

    _, classify = viewer.window.add_plugin_dock_widget("xafsmap", "5 Map")
    for path in references:
        stack_dock.session.add_references(str(path))
    ticks = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    marks, band_draw = {}, []
    timer.start()
    sampler = StackSampler()
    tic = time.perf_counter()
    classify.map_button.click()
    worker = classify.worker

    def on_yield(value):  # connected after the dock's own handler: the layers are updated by now
        if value[0] == "model":
            marks["trained_s"] = time.perf_counter() - tic
        elif value[0] == "maps":
            marks["maps_shown_s"] = time.perf_counter() - tic
        elif not band_draw:
            band_draw.append(watch.count)

    worker.yielded.connect(on_yield)
    worker.finished.connect(lambda: marks.setdefault("finished_s", time.perf_counter() - tic))
    while "finished_s" not in marks or getattr(classify, "_steps", None):
        app.processEvents()
        if band_draw and "first_labels_s" not in marks and watch.count > band_draw[0]:
            marks["first_labels_s"] = time.perf_counter() - tic
        time.sleep(0.001)
    marks["all_maps_s"] = time.perf_counter() - tic
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    sampler.stop()
    gaps = np.diff(ticks)
    marks["longest_stall_s"] = float(gaps.max())
    worst = int(np.argmax(gaps))
    marks["longest_stall_at_s"] = ticks[worst] - tic
    marks["longest_stall_stack"] = sampler.during(ticks[worst], ticks[worst + 1])
    marks["stalls_over_0.2_s"] = [(round(ticks[i] - tic, 2), round(float(gaps[i]), 3),
                                   sampler.during(ticks[i], ticks[i + 1], top=3)) for i in np.flatnonzero(gaps > 0.2)]
    after = np.array(ticks[1:]) >= tic + marks.get("maps_shown_s", 0)
    marks["longest_stall_after_maps_s"] = float(gaps[after].max()) if after.any() else float("nan")
    marks["reported"] = classify.status.text()
    return marks


def summary(times: list[float]) -> str:
    ms = np.array(times) * 1000
    return f"median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms (n={ms.size})"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--energies", type=int, default=210)
    parser.add_argument("--rows", type=int, default=2600)
    parser.add_argument("--cols", type=int, default=2600)
    parser.add_argument("--clicks", type=int, default=21)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--keep", action="store_true", help="keep the generated stack")
    parser.add_argument("--stack", type=Path, help="an existing stack (energies beside it): measured, never deleted")
    parser.add_argument("--map", action="store_true", help="also time the Map dock (Fe, FeO, Fe2O3 references)")
    parser.add_argument("--layers", action="store_true", help="also time adding one map-sized layer")
    args = parser.parse_args(argv)

    path = args.stack or args.folder / f"gui-{args.energies}x{args.rows}x{args.cols}.tif"
    args.keep = args.keep or args.stack is not None
    if not path.is_file():
        tic = time.perf_counter()
        write_stack(path, energies=args.energies, rows=args.rows, cols=args.cols)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - tic:.0f} s", flush=True)
    results = {"size_gb": path.stat().st_size / 1e9}
    try:
        import napari
        from qtpy.QtWidgets import QApplication

        rng = np.random.default_rng(1)
        viewer = napari.Viewer(title="xafsmap benchmark")
        viewer.window.resize(1600, 1000)
        app = QApplication.instance()
        for _ in range(50):
            app.processEvents()
        watch = DrawWatch(viewer, app)
        _, inspect = viewer.window.add_plugin_dock_widget("xafsmap", "6 Inspect")
        _, measurement = viewer.window.add_plugin_dock_widget("xafsmap", "1 Stack")
        for _ in range(20):
            app.processEvents()

        evict(path)
        results["first_frame_cold_s"], layer = first_frame(viewer, watch, path)
        results["shape"] = tuple(layer.data.shape)
        measurement.use_layer(layer.name)
        evict(path)
        results["steps_cold_s"] = energy_steps(viewer, watch, args.steps, rng)
        results["steps_warm_s"] = energy_steps(viewer, watch, args.steps, rng)
        evict(path)
        results["clicks_cold_s"], results["reads_cold_s"] = clicks(viewer, inspect, app, args.clicks, rng)
        results["clicks_warm_s"], results["reads_warm_s"] = clicks(viewer, inspect, app, args.clicks, rng)
        results["follow"] = follow(viewer, inspect, app, 60, rng)
        if args.layers:
            results["layers"] = layer_adds(viewer, app, results["shape"][1:])
        if args.map:
            from xafsmap.core.simulate.sample import bundled_reference_paths

            evict(path)
            refs = [bundled_reference_paths()[name] for name in ("Fe", "FeO", "Fe2O3")]
            results["map"] = map_latency(viewer, measurement, watch, app, refs)
        viewer.close()
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            path.with_name(f"{path.stem}.energies.txt").unlink(missing_ok=True)
    print(f"stack {results['shape']} float32, {results['size_gb']:.2f} GB")
    print(f"first frame (cold cache): {results['first_frame_cold_s']:.2f} s")
    for kind in ("cold", "warm"):
        print(f"energy step ({kind}): {summary(results[f'steps_{kind}_s'])}")
        print(f"Inspect click ({kind}, after the first): {summary(results[f'clicks_{kind}_s'][1:])}; "
              f"first {results[f'clicks_{kind}_s'][0] * 1000:.0f} ms")
        print(f"  of which the spectrum read (click → read and normalized in the worker): {summary(results[f'reads_{kind}_s'][1:])}")
    f = results["follow"]
    print(f"Follow the mouse ({f['moves']} moves at 60 Hz along a row): {f['reads']} reads, "
          f"{f['pixels_plotted']} pixels plotted, the last shown {f['last_shown_s'] * 1000:.0f} ms after the last move, "
          f"longest gap between processed events {f['longest_gap_s'] * 1000:.0f} ms")
    for kind, keep, add, turn in results.get("layers", []):
        print(f"add_{kind} {results['shape'][1:]}{' (selection put back)' if keep else ''}: "
              f"{add * 1000:.0f} ms, then {turn * 1000:.0f} ms in the next turn")
    if "map" in results:
        m = results["map"]
        print(f"Map (cold cache, training first): trained {m.get('trained_s', float('nan')):.1f} s, maps shown "
              f"{m.get('maps_shown_s', float('nan')):.1f} s, first labels drawn {m.get('first_labels_s', float('nan')):.1f} s, "
              f"all maps {m['all_maps_s']:.1f} s after the click")
        print(f"  longest event-loop stall: {m['longest_stall_s'] * 1000:.0f} ms over the whole task, "
              f"{m['longest_stall_after_maps_s'] * 1000:.0f} ms after the maps appeared")
        print(f"  the dock reported: {m['reported']}")
        print(f"  the longest stall began {m['longest_stall_at_s']:.1f} s after the click; the GUI thread ran "
              f"(innermost frame, samples every 10 ms):")
        for line in m["longest_stall_stack"]:
            print(f"    {line}")
        print(f"  every stall over 0.2 s (s after the click, length s, top frames): ")
        for at, length, frames in m["stalls_over_0.2_s"]:
            print(f"    {at} s, {length} s: {frames}")
    return results


if __name__ == "__main__":
    main()
