"""Dock 7, Trust: unexplained pixels, a library search for what is missing, reference-set parsimony.

The headless counterparts are ``xafsmap search-references`` and ``xafsmap compare-models``
(:mod:`xafsmap.core.trust.assess`); this dock calls the same core generators on the prepared
stack and the references ticked in the References dock.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ._base import Dock, hbox, notify_errors, set_layer
from ._controls import control, controls
from ._plot import PlotCanvas
from ._session import Entry

#: Candidates listed per region, and drawn over its mean spectrum.
LISTED, DRAWN = 10, 3
COLUMNS = ("rank", "name", "score", "similarity", "offset (eV)")
#: Unexplained regions are drawn as outlines of this width (pixels) and colour, over the classes.
CONTOUR, UNEXPLAINED_COLOR = 2, (1.0, 0.25, 0.85, 1.0)


def search_library(paths, found):
    """Worker: read a library and rank its spectra for every unexplained region.

    Returns ``(library by name, Candidates, tables, skipped)``; see
    :func:`~xafsmap.core.trust.discover.rank_candidates` for the tables.
    """
    from ..core.trust.discover import prepare_candidates, rank_candidates
    from ..core.io.library import scan_library

    library, skipped = scan_library(paths)
    if not library:
        raise ValueError(f"no readable reference spectrum in {', '.join(map(str, paths))}")
    candidates = prepare_candidates(library, found.setup)
    tables = (rank_candidates(found.spectra, found.setup, candidates, found.spectra_variance)
              if found.sizes.size and candidates.names else [])
    by_name = {}
    for ref in library:
        by_name.setdefault(ref.name, ref)
    return by_name, candidates, tables, [*skipped, *candidates.skipped]


def parse_sets(text: str, names) -> dict[str, list[str]]:
    """``"A=Fe,FeO; B=Fe,FeO,Fe3O4"`` → ``{"A": ["Fe", "FeO"], ...}``, names checked against ``names``.

    >>> parse_sets("two=Fe,FeO; three=Fe,FeO,Fe2O3", ["Fe", "FeO", "Fe2O3"])
    {'two': ['Fe', 'FeO'], 'three': ['Fe', 'FeO', 'Fe2O3']}
    """
    sets = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        label, eq, members = part.partition("=")
        refs = [m.strip() for m in members.split(",") if m.strip()]
        if not eq or not label.strip() or not refs:
            raise ValueError(f"set {part!r} must read NAME=REF,REF,...")
        unknown = [r for r in refs if r not in names]
        if unknown:
            raise ValueError(f"set {label.strip()!r} names {unknown}, not in the References table {list(names)}")
        sets[label.strip()] = refs
    if len(sets) < 2:
        raise ValueError(f"give at least two sets separated by ';' (got {len(sets)})")
    return sets


class TrustWidget(Dock):
    """Find unexplained regions, search a library for them, and compare reference sets."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.controls = controls(self.form, ("false_alarm", "pool"), on_change=self._changed)
        self.find_button = self.button("Find unexplained", self.find, tip="pixels no mixture of the ticked "
                                       "references explains, grouped into regions")
        self.form.addRow(self.find_button)
        self.region_box = QComboBox()
        self.form.addRow("Region", self.region_box)
        self.controls["library"] = library = control("library")
        library.changed.connect(lambda: self._changed("library"))
        self.library_edit = library.editor
        browse = QPushButton("…")
        browse.setMaximumWidth(28)
        browse.clicked.connect(lambda *_: self._browse())
        self.form.addRow(library.setting.label, hbox(library, browse))
        self.search_button = self.button("Search library", self.search, tip="rank library spectra by how much "
                                         "each improves the fit of the region")
        self.add_button = self.button("Add to references", self.add_candidate, tip="add the selected candidate "
                                      "(ticked, at its best offset) to the References dock")
        self.form.addRow(hbox(self.search_button, self.add_button))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(120)
        self.body.addWidget(self.table)
        self.plot = PlotCanvas(1, height=2.4)
        self.body.addWidget(self.plot)
        compare = QWidget()
        self.sets_edit = QLineEdit()
        self.sets_edit.setToolTip("NAME=REF,REF; NAME=REF,REF,REF with the names of the References table")
        self.compare_button = self.button("Compare sets", self.compare, tip="information criterion (BIC) per "
                                          "pixel and over the image; warns when more references win by chance")
        line = QHBoxLayout(compare)
        line.setContentsMargins(0, 0, 0, 0)
        self.controls["criterion"] = criterion = control("criterion")
        criterion.changed.connect(lambda: self._changed("criterion"))
        line.addWidget(QLabel("Sets"))
        line.addWidget(self.sets_edit)
        line.addWidget(criterion)
        line.addWidget(self.compare_button)
        self.body.addWidget(compare)
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.body.addWidget(self.verdict)
        self.body.addWidget(self.status)
        self.found = self.search_result = None
        self._sets_auto = ""
        self.region_box.currentIndexChanged.connect(lambda *_: self._show_region())
        self.listen(self.session.changed, self._on_session)
        self._on_session("references")

    def _browse(self):
        path = QFileDialog.getExistingDirectory(self, "Reference library folder")
        if path:
            self.controls["library"].setValue((path,))

    @notify_errors("Trust settings")
    def _changed(self, name: str):
        self.session.update("trust", **{name: self.controls[name].value()})

    def _fit_options(self) -> dict:
        """The options of the fits, from the settings (as ``xafsmap search-references`` passes them)."""
        s = self.session.settings
        return dict(offsets=[ref.offset for ref in s.references], threshold=s.threshold,
                    significance=s.significance, fit_range=s.fit_range, thick=s.thick,
                    align_references=s.align_references, **s.normalization)

    # unexplained ---------------------------------------------------------
    @notify_errors("Find unexplained")
    def find(self):
        """Score every pixel against the ticked references (worker); regions and z as layers."""
        from ..core.trust.unexplained import iter_unexplained

        stack, references = self.session.prepared_stack(), self.session.references()
        settings = self.session.settings
        self.launch(iter_unexplained, stack, references, false_alarm=settings.false_alarm, pool=settings.pool,
                    rng=settings.seed, **self._fit_options(),
                    done=self._found, what="Finding unexplained pixels", total=1,
                    buttons=(self.find_button, self.search_button, self.compare_button))

    def _found(self, found):
        from .._reader import labels_layer

        self.found, self.search_result = found, None
        grid = self.session.map_transform()
        names = [f"region {r + 1}" for r in range(found.sizes.size)]
        title = self.session.layer_title
        data, meta, _ = labels_layer(found.regions, names, name=title("unexplained"), kind="region",
                                     background="explained")
        # outlines in one colour of their own: distinct from the classes they lie over
        meta["colormap"] = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0), **dict.fromkeys(range(1, len(names) + 1),
                                                                                 UNEXPLAINED_COLOR)}
        finite = found.z[np.isfinite(found.z)]
        high = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        set_layer(self.viewer, found.z, name=title("z"), visible=False, colormap="inferno",
                  contrast_limits=(0.0, max(high, 1.0)), **grid)
        set_layer(self.viewer, data, kind="labels", contour=CONTOUR, **meta, **grid)
        self.region_box.blockSignals(True)
        self.region_box.clear()
        self.region_box.addItems([f"{name} ({size} px)" for name, size in zip(names, found.sizes)])
        self.region_box.blockSignals(False)
        sample = int(np.count_nonzero(found.mask == 1))
        self.report(f"{int(found.flags.sum())} of {sample} sample pixels unexplained at a false-alarm rate of "
                    f"{found.params['false_alarm']:g}; {found.sizes.size} region(s) of ≥ {found.params['min_size']} px")
        self._show_region()

    # library search ------------------------------------------------------
    @notify_errors("Search library")
    def search(self, paths=None):
        """Rank the library's spectra for every region (worker) and list the selected region's best."""
        if self.found is None:
            raise ValueError("click Find unexplained first")
        if not self.found.sizes.size:
            raise ValueError("no unexplained region to search for: every pixel is explained")
        paths = paths or list(self.controls["library"].value())
        if not paths:
            raise ValueError("give a library folder or file first")
        self.launch(search_library, [str(p) for p in paths], self.found, done=self._searched,
                    what="Searching the library", buttons=(self.find_button, self.search_button))

    def _searched(self, value):
        self.search_result = value
        _, candidates, _, skipped = value
        self.report(f"{len(candidates.names)} library spectra ranked" +
                    (f"; {len(skipped)} skipped (not covering the edge or unreadable)" if skipped else ""))
        self._show_region()

    def _show_region(self):
        self.table.setRowCount(0)
        region = self.region_box.currentIndex()
        if self.found is None or region < 0:
            return
        rows = self.search_result[2][region][:LISTED] if self.search_result else []
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            cells = (str(i + 1), row["name"], f"{row['score']:.3f}", f"{row['similarity']:.3f}", f"{row['offset']:+g}")
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        if rows:
            self.table.selectRow(0)
        self._draw(region, rows[:DRAWN])

    def _draw(self, region, rows):
        from ..core.mapping.legend import label_colors

        setup = self.found.setup
        start, stop = setup.window
        energies = setup.energies[start:stop]
        [ax] = self.plot.clear()
        ax.plot(energies, self.found.spectra[region, start:stop], ".", color="white", ms=3,
                label=f"region {region + 1} (mean)")
        colors = label_colors(max(len(rows), 1)) / 255.0
        if self.search_result:
            candidates = self.search_result[1]
            index = {name: i for i, name in enumerate(candidates.names)}
            for i, row in enumerate(rows):
                s = int(np.argmin(np.abs(candidates.offsets - row["offset"])))
                ax.plot(energies, candidates.spectra[index[row["name"]], s, start:stop], color=colors[i + 1],
                        lw=1, label=f"{row['name'][:30]} ({row['score']:.2f})")
        ax.set_xlabel("energy (eV)")
        ax.set_ylabel("normalized μ")
        ax.legend(fontsize=6)
        self.plot.draw()

    @notify_errors("Add to references")
    def add_candidate(self, rank: int | None = None):
        """Add the selected (or ``rank``-th, 1-based) candidate of the region to the references, ticked."""
        if not self.search_result:
            raise ValueError("search the library first")
        region = self.region_box.currentIndex()
        rows = self.search_result[2][region]
        selected = sorted({index.row() for index in self.table.selectedIndexes()})
        i = (rank - 1) if rank is not None else (selected[0] if selected else 0)
        row = rows[i]
        ref = self.search_result[0][row["name"]]
        taken = {entry.name for entry in self.session.entries}
        name = ref.name if ref.name not in taken else f"{ref.name} (library)"
        if any(entry.spec == ref.source and entry.use for entry in self.session.entries):
            raise ValueError(f"{ref.name!r} is already a ticked reference")
        self.session.set_entries([*self.session.entries, Entry(ref.source, name, row["offset"], True, ref)])
        self.report(f"added {name!r} (offset {row['offset']:+g} eV) to the references: map again, or Find "
                    "unexplained again to check that it explains the region")

    # parsimony -----------------------------------------------------------
    def default_sets(self) -> str:
        """Two sets at least, so Compare works at once: the ticked references, the ticked ones
        without the last (the newest, e.g. one added from the library), and every reference
        of the table when that differs.

        The pair "with and without the newest reference" is the question after Add to references.
        """
        ticked = [e.name for e in self.session.entries if e.use]
        every = [e.name for e in self.session.entries]
        parts = [f"ticked={','.join(ticked)}"] if ticked else []
        if len(ticked) >= 2:
            parts.append(f"without {ticked[-1]}={','.join(ticked[:-1])}")
        if every != ticked:
            parts.append(f"all={','.join(every)}")
        return "; ".join(parts)

    @notify_errors("Compare sets")
    def compare(self):
        """Fit every set at every pixel and judge them by BIC (worker); ``preferred`` as a layer."""
        from ..core.trust.parsimony import iter_compare

        names = [entry.name for entry in self.session.entries]
        sets = parse_sets(self.sets_edit.text(), names)
        stack = self.session.prepared_stack()
        refs = {name: self.session.reference_named(name) for name in {n for members in sets.values() for n in members}}
        options = {k: v for k, v in self._fit_options().items() if k not in ("offsets", "thick", "align_references")}
        self.launch(iter_compare, stack, {label: [refs[n] for n in members] for label, members in sets.items()},
                    criterion=self.session.settings.criterion, **options, done=self._compared, what="Comparing reference sets", total=1,
                    buttons=(self.compare_button, self.find_button))

    def _compared(self, result):
        from .._reader import labels_layer

        data, meta, _ = labels_layer(result.preferred, list(result.names), name=self.session.layer_title("preferred"),
                                     kind="set", background="no sample")
        set_layer(self.viewer, data, kind="labels", **meta, **self.session.map_transform())
        summary = result.summary
        criterion = summary["criterion"]
        lines = [f"preferred: {summary['preferred']} ({criterion.upper()} over {summary['pixels']} pixels)"]
        for name, values in summary["sets"].items():
            lines.append(f"{name}: {values['references']} references, {criterion.upper()} per pixel "
                         f"{values[f'{criterion}_per_pixel']:.4g}, χ² per pixel {values['chi2_per_pixel']:.4g}, "
                         f"preferred at {100 * values['pixels_preferring']:.0f} % of pixels")
        lines += [f"⚠ {w}" for w in summary["warnings"]] + [f"note: {n}" for n in summary["notes"]]
        lines.append(f"undecided (margin < 2): {100 * summary['undecided_pixels']:.0f} % of pixels")
        self.verdict.setText("\n".join(lines))

    def _on_session(self, part: str):
        if part == "recipe":
            for name, widget in self.controls.items():
                widget.show_value(getattr(self.session.settings, name))
        if part in ("references", "recipe", "measurement"):
            text = self.sets_edit.text()
            if not text or text == self._sets_auto:
                self._sets_auto = self.default_sets()
                self.sets_edit.setText(self._sets_auto)
        if part in ("measurement", "prepare", "calibration", "recipe"):  # results of other choices
            self.found = self.search_result = None
            self.region_box.clear()
            self.table.setRowCount(0)
            self.verdict.setText("")
            self.plot.clear()
            self.plot.draw()

